"""Staff console: programs (allow-list, tiers), approval queue actions, links, clicks, referrals."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from affiliates.models import Affiliate, Program, Referral
from tests.accounts.factories import SuperuserFactory
from tests.affiliates.factories import (
    AffiliateFactory,
    ClickFactory,
    ProgramFactory,
    ReferralLinkFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = SuperuserFactory()
    client.force_login(user)
    return user


def program_post(**overrides):
    data = {
        "name": "Main",
        "slug": "main",
        "landing_url": "https://www.example.com/",
        "allowed_hosts": "www.example.com\nexample.com",
        "attribution_window_days": 30,
        "commission_type": "percent",
        "commission_rate": "20",
        "duration": "first_payment",
        "tiers": "[]",
        "hold_days": 30,
        "minimum_payout": 5000,
        "currency": "usd",
        "is_active": "on",
    }
    data.update(overrides)
    return data


def test_program_add_stores_host_list(client, staff):
    response = client.post(
        reverse("admin:affiliates_program_add"),
        program_post(
            allowed_hosts="WWW.Example.com\nexample.com, b\u00fccher.example",
            tiers='[{"min_revenue": 0, "rate": "20"}, {"min_revenue": 500000, "rate": "30"}]',
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    program = Program.objects.get()
    assert program.allowed_hosts == ["www.example.com", "example.com", "xn--bcher-kva.example"]
    assert program.tiers[1] == {"min_revenue": 500000, "rate": "30"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("allowed_hosts", "https://www.example.com"),
        ("allowed_hosts", "www.example.com/path"),
        ("allowed_hosts", "user@www.example.com"),
        ("allowed_hosts", "www.example.com:8080"),
        ("allowed_hosts", "example.com"),  # landing host missing
        ("landing_url", "https://evil.example/"),
        ("tiers", '{"rate": "20"}'),
        ("tiers", '[{"min_revenue": 0, "rate": "120"}]'),
        ("tiers", '[{"min_revenue": 10, "rate": "20"}, {"min_revenue": 5, "rate": "30"}]'),
        ("tiers", '[{"min_revenue": -1, "rate": "20"}]'),
        ("tiers", '[{"min_revenue": 0, "rate": "abc"}]'),
    ],
)
def test_program_form_rejects(client, staff, field, value):
    response = client.post(reverse("admin:affiliates_program_add"), program_post(**{field: value}))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Program.objects.count() == 0


def test_program_changelist_queries(client, staff, django_assert_max_num_queries):
    ProgramFactory.create_batch(5)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("admin:affiliates_program_changelist")).status_code == 200


def test_approval_queue_lists_pending_first(client, staff, django_assert_max_num_queries):
    program = ProgramFactory()
    approved = AffiliateFactory.create_batch(3, program=program)
    pending = AffiliateFactory(program=program, status=Affiliate.Status.PENDING)
    AffiliateFactory.create_batch(3, program=program)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("admin:affiliates_affiliate_changelist"))
    rows = list(response.context["cl"].result_list)
    assert rows[0] == pending
    assert approved[0] in rows


def test_approve_action_calls_the_service(
    client, staff, django_capture_on_commit_callbacks, celery_eager
):
    affiliate = AffiliateFactory(status=Affiliate.Status.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:affiliates_affiliate_changelist"),
            {"action": "approve", "_selected_action": [affiliate.pk]},
        )
    assert response.status_code == 302
    affiliate.refresh_from_db()
    assert affiliate.status == Affiliate.Status.APPROVED
    assert affiliate.decided_by == staff
    assert affiliate.links.exists()
    assert len(mail.outbox) == 1
    assert LogEntry.objects.filter(object_id=str(affiliate.pk)).exists()


def test_reject_and_suspend_actions(client, staff):
    pending = AffiliateFactory(status=Affiliate.Status.PENDING)
    approved = AffiliateFactory()
    url = reverse("admin:affiliates_affiliate_changelist")
    client.post(url, {"action": "reject", "_selected_action": [pending.pk]})
    client.post(url, {"action": "suspend", "_selected_action": [approved.pk]})
    pending.refresh_from_db()
    approved.refresh_from_db()
    assert (pending.status, approved.status) == ("rejected", "suspended")


def test_illegal_transition_is_a_warning_not_an_error(client, staff):
    approved = AffiliateFactory()
    response = client.post(
        reverse("admin:affiliates_affiliate_changelist"),
        {"action": "approve", "_selected_action": [approved.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert any("cannot become" in str(m) for m in response.context["messages"])


def test_link_changelist_counts_clicks_without_n_plus_one(
    client, staff, django_assert_max_num_queries
):
    links = ReferralLinkFactory.create_batch(6)
    for n, link in enumerate(links):
        ClickFactory.create_batch(n, link=link)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("admin:affiliates_referrallink_changelist"))
    counts = {row.code: row.click_count for row in response.context["cl"].result_list}
    assert counts == {link.code: n for n, link in enumerate(links)}


def test_link_admin_rejects_unsafe_landing_path(client, staff):
    link = ReferralLinkFactory()
    response = client.post(
        reverse("admin:affiliates_referrallink_change", args=[link.pk]),
        {
            "affiliate": link.affiliate.pk,
            "code": link.code,
            "landing_path": "//evil.example",
            "is_active": "on",
        },
    )
    assert response.status_code == 200
    assert "landing_path" in response.context["adminform"].form.errors


def test_click_and_referral_changelists_read_only(client, staff, django_assert_max_num_queries):
    link = ReferralLinkFactory()
    ClickFactory.create_batch(10, link=link)
    for n in range(5):
        Referral.objects.create(
            affiliate=link.affiliate,
            link=link,
            stripe_customer_id=f"cus_{n}",
            source=Referral.Source.CODE,
            referred_at=timezone.now(),
        )
    with django_assert_max_num_queries(10):
        assert client.get(reverse("admin:affiliates_click_changelist")).status_code == 200
    with django_assert_max_num_queries(10):
        assert client.get(reverse("admin:affiliates_referral_changelist")).status_code == 200
    click = link.clicks.first()
    response = client.get(reverse("admin:affiliates_click_change", args=[click.pk]))
    assert response.status_code == 200
    assert b'name="_save"' not in response.content
