from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from affiliates.models import Affiliate, ReferralLink
from affiliates.services.applications import (
    IllegalTransition,
    affiliate_apply,
    affiliate_approve,
    affiliate_reject,
    affiliate_suspend,
    landing_path_validate,
    referral_link_create,
)
from tests.accounts.factories import StaffUserFactory, UserFactory
from tests.affiliates.factories import AffiliateFactory, ProgramFactory

pytestmark = pytest.mark.django_db


def test_apply_creates_pending_once_and_emails(django_capture_on_commit_callbacks, celery_eager):
    user = UserFactory(email="ann@example.com")
    program = ProgramFactory()
    with django_capture_on_commit_callbacks(execute=True):
        affiliate = affiliate_apply(
            user=user, program=program, website="https://ann.example", promotion_plan=" blog "
        )
    assert affiliate.status == Affiliate.Status.PENDING
    assert affiliate.promotion_plan == "blog"
    assert [m.to for m in mail.outbox] == [["ann@example.com"]]

    again = affiliate_apply(user=user, program=ProgramFactory())
    assert again.pk == affiliate.pk
    assert again.program_id == program.pk
    assert Affiliate.objects.count() == 1


def test_apply_refuses_inactive_program():
    with pytest.raises(ValidationError):
        affiliate_apply(user=UserFactory(), program=ProgramFactory(is_active=False))


def test_approve_records_decision_creates_link_and_emails(
    django_capture_on_commit_callbacks, celery_eager
):
    staff = StaffUserFactory()
    affiliate = AffiliateFactory(status=Affiliate.Status.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        affiliate_approve(affiliate=affiliate, actor=staff, note="looks good")
    affiliate.refresh_from_db()
    assert affiliate.status == Affiliate.Status.APPROVED
    assert affiliate.decided_by == staff
    assert affiliate.decided_at is not None
    assert affiliate.staff_note == "looks good"
    link = ReferralLink.objects.get(affiliate=affiliate)
    assert len(link.code) >= 12
    assert len(mail.outbox) == 1
    assert link.code in mail.outbox[0].body
    assert mail.outbox[0].to == [affiliate.user.email]


def test_reapproval_after_suspension_keeps_single_first_link():
    staff = StaffUserFactory()
    affiliate = AffiliateFactory(status=Affiliate.Status.PENDING)
    affiliate_approve(affiliate=affiliate, actor=staff)
    affiliate_suspend(affiliate=affiliate, actor=staff)
    assert affiliate.status == Affiliate.Status.SUSPENDED
    affiliate_approve(affiliate=affiliate, actor=staff)
    assert ReferralLink.objects.filter(affiliate=affiliate).count() == 1


@pytest.mark.parametrize(
    ("start", "service"),
    [
        (Affiliate.Status.APPROVED, affiliate_approve),
        (Affiliate.Status.APPROVED, affiliate_reject),
        (Affiliate.Status.PENDING, affiliate_suspend),
        (Affiliate.Status.REJECTED, affiliate_suspend),
        (Affiliate.Status.SUSPENDED, affiliate_reject),
    ],
)
def test_illegal_transitions_raise_and_change_nothing(start, service):
    affiliate = AffiliateFactory(status=start)
    with pytest.raises(IllegalTransition):
        service(affiliate=affiliate, actor=StaffUserFactory())
    affiliate.refresh_from_db()
    assert affiliate.status == start
    assert affiliate.decided_at is None
    assert not mail.outbox


def test_reject_emails(django_capture_on_commit_callbacks, celery_eager):
    affiliate = AffiliateFactory(status=Affiliate.Status.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        affiliate_reject(affiliate=affiliate, actor=StaffUserFactory())
    assert affiliate.status == Affiliate.Status.REJECTED
    assert "not accepted" in mail.outbox[0].body


@pytest.mark.parametrize(
    "bad",
    [
        "pricing",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "https:evil.example",
        "/%2F%2Fevil.example",
        "/a\nb",
        "javascript:alert(1)",
    ],
)
def test_landing_path_rejects_unsafe(bad):
    with pytest.raises(ValidationError):
        landing_path_validate(bad)
    with pytest.raises(ValidationError):
        referral_link_create(affiliate=AffiliateFactory(), landing_path=bad)


def test_link_create_unique_codes_and_fields():
    affiliate = AffiliateFactory()
    links = [
        referral_link_create(
            affiliate=affiliate, campaign="spring", sub_id="x", landing_path="/pricing?a=1"
        )
        for _ in range(5)
    ]
    assert len({link.code for link in links}) == 5
    assert links[0].landing_path == "/pricing?a=1"
    assert links[0].campaign == "spring"
