from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from affiliates.models import Affiliate, ReferralLink
from ledger.models import Account, PayeeProfile, Payout, PayoutBatch
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.affiliates.factories import (
    AffiliateFactory,
    ClickFactory,
    CommissionFactory,
    ProgramFactory,
    ReferralFactory,
    ReferralLinkFactory,
)

pytestmark = pytest.mark.django_db

PAGES = [
    "portal:dashboard",
    "portal:links",
    "portal:commissions",
    "portal:commissions-csv",
    "portal:payouts",
    "portal:payout-settings",
]


@pytest.fixture
def affiliate():
    return AffiliateFactory()


@pytest.fixture
def portal(client, affiliate):
    client.force_login(affiliate.user)
    return client


@pytest.mark.parametrize("name", PAGES)
def test_pages_require_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("portal:login"))


@pytest.mark.parametrize("status", ["pending", "rejected", "suspended"])
def test_unapproved_affiliate_sees_status_page(client, status):
    affiliate = AffiliateFactory(status=status)
    client.force_login(affiliate.user)
    response = client.get(reverse("portal:dashboard"))
    assert response.status_code == 200
    assert "affiliates/portal/status.html" in [t.name for t in response.templates]
    assert "stat-clicks" not in response.content.decode()
    assert client.get(reverse("portal:commissions-csv")).status_code == 200
    assert b"invoice" not in client.get(reverse("portal:commissions-csv")).content


def test_non_affiliate_user_gets_403(client):
    client.force_login(UserFactory())
    assert client.get(reverse("portal:dashboard")).status_code == 403


def test_signup_creates_user_and_pending_application(client):
    program = ProgramFactory(name="Partners")
    response = client.post(
        reverse("portal:signup"),
        {
            "name": "Ann",
            "email": "Ann@Example.com",
            "password": "a-long-unusual-passphrase-9",
            "program": program.pk,
            "website": "https://ann.example",
            "promotion_plan": "newsletter",
        },
    )
    assert response.status_code == 302
    affiliate = Affiliate.objects.get(user__email="ann@example.com")
    assert affiliate.status == Affiliate.Status.PENDING
    assert affiliate.program == program
    page = client.get(reverse("portal:dashboard"))
    assert "pending review" in page.content.decode()


def test_signup_duplicate_email_shows_error(client):
    UserFactory(email="taken@example.com")
    response = client.post(
        reverse("portal:signup"),
        {
            "name": "X",
            "email": "taken@example.com",
            "password": "a-long-unusual-passphrase-9",
            "program": ProgramFactory().pk,
        },
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert not Affiliate.objects.exists()


def test_login_and_lockout(client, settings):
    settings.STAFF_LOGIN_MAX_FAILURES = 3
    affiliate = AffiliateFactory()
    url = reverse("portal:login")
    for _ in range(3):
        response = client.post(url, {"username": affiliate.user.email, "password": "wrong"})
        assert response.status_code == 200
    response = client.post(url, {"username": affiliate.user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    other = AffiliateFactory()
    response = client.post(url, {"username": other.user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:dashboard")


def test_password_reset_sends_portal_link(client, django_capture_on_commit_callbacks, celery_eager):
    affiliate = AffiliateFactory()
    with django_capture_on_commit_callbacks(execute=True):  # mail goes out after commit
        response = client.post(reverse("portal:password-reset"), {"email": affiliate.user.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/portal/reset/\S+/)", mail.outbox[0].body).group(1)
    response = client.get(link, follow=True)
    assert response.context["validlink"]
    response = client.post(
        response.redirect_chain[-1][0],
        {"new_password1": "brand-new-pass-phrase-7", "new_password2": "brand-new-pass-phrase-7"},
    )
    assert response.status_code == 302
    assert User.objects.get(pk=affiliate.user.pk).check_password("brand-new-pass-phrase-7")


def test_dashboard_figures(portal, affiliate, django_assert_max_num_queries):
    link = ReferralLinkFactory(affiliate=affiliate)
    ClickFactory.create_batch(4, link=link)
    ClickFactory(link=link, clicked_at=timezone.now() - timedelta(days=200))
    referral = ReferralFactory(affiliate=affiliate)
    ReferralFactory(affiliate=affiliate)
    CommissionFactory(referral=referral, amount=1234, status="held")
    CommissionFactory(referral=referral, amount=500, status="paid", reversed_amount=100)
    ClickFactory.create_batch(3)  # another affiliate's
    with django_assert_max_num_queries(12):
        response = portal.get(reverse("portal:dashboard"))
    stats = response.context["stats"]
    assert (stats.clicks, stats.signups, stats.conversions) == (5, 2, 1)
    assert str(stats.conversion_rate) == "20.00"
    assert stats.earnings == {"usd": {"held": 1234, "approved": 0, "paid": 400, "reversed": 100}}
    assert len(stats.series) == 90
    assert stats.series[-1].clicks == 4
    assert stats.series[-1].earnings == 1234 + 400
    body = response.content.decode()
    assert "$12.34" in body
    assert body.count('class="bar-clicks"') == 90


def test_links_create_and_list_only_own(portal, affiliate):
    ReferralLinkFactory(code="someone-elses")
    response = portal.post(
        reverse("portal:links"), {"campaign": "spring", "landing_path": "/pricing"}
    )
    assert response.status_code == 302
    link = ReferralLink.objects.get(affiliate=affiliate)
    assert link.campaign == "spring"
    body = portal.get(reverse("portal:links")).content.decode()
    assert f"/r/{link.code}" in body
    assert "someone-elses" not in body


def test_links_bad_landing_path_shows_error(portal, affiliate):
    response = portal.post(reverse("portal:links"), {"landing_path": "//evil.example"})
    assert response.status_code == 200
    assert "starting with" in response.content.decode()
    assert not ReferralLink.objects.filter(affiliate=affiliate).exists()


def test_commissions_filters_and_pagination(portal, affiliate):
    referral = ReferralFactory(affiliate=affiliate)
    old = timezone.now() - timedelta(days=40)
    CommissionFactory(referral=referral, status="approved", paid_at_invoice=old)
    CommissionFactory.create_batch(30, referral=referral, status="held")
    CommissionFactory(status="approved")  # another affiliate's
    response = portal.get(reverse("portal:commissions"), {"status": "approved"})
    assert [c.status for c in response.context["page"]] == ["approved"]
    assert response.context["page"][0].affiliate_id == affiliate.pk
    day = (old - timedelta(days=1)).date().isoformat()
    response = portal.get(
        reverse("portal:commissions"),
        {"date_from": day, "date_to": (old + timedelta(days=1)).date().isoformat()},
    )
    assert len(response.context["page"]) == 1
    response = portal.get(reverse("portal:commissions"))
    assert response.context["page"].paginator.count == 31
    assert len(response.context["page"]) == 25
    assert len(portal.get(reverse("portal:commissions"), {"page": 2}).context["page"]) == 6


def test_commission_detail_of_another_affiliate_is_404(portal, affiliate):
    mine = CommissionFactory(referral=ReferralFactory(affiliate=affiliate))
    theirs = CommissionFactory()
    assert portal.get(reverse("portal:commission-detail", args=[mine.pk])).status_code == 200
    assert portal.get(reverse("portal:commission-detail", args=[theirs.pk])).status_code == 404


def test_csv_export(portal, affiliate):
    referral = ReferralFactory(affiliate=affiliate)
    CommissionFactory(referral=referral, amount=700, status="paid", stripe_invoice_id="in_a")
    CommissionFactory(referral=referral, amount=300, status="held", stripe_invoice_id="in_b")
    CommissionFactory(stripe_invoice_id="in_other")
    response = portal.get(reverse("portal:commissions-csv"), {"status": "paid"})
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["invoice"], r["amount"], r["status"]) for r in rows] == [("in_a", "700", "paid")]


def test_payouts_history_only_own(portal, affiliate):
    batch = PayoutBatch.objects.create(payee_type="affiliate", as_of=timezone.localdate())
    Payout.objects.create(
        batch=batch,
        payee_type="affiliate",
        payee_id=affiliate.pk,
        amount=4321,
        currency="usd",
        method="paypal",
        status="paid",
        paid_at=timezone.now(),
    )
    other = AffiliateFactory()
    Payout.objects.create(
        batch=batch,
        payee_type="affiliate",
        payee_id=other.pk,
        amount=9999,
        currency="usd",
        method="paypal",
    )
    body = portal.get(reverse("portal:payouts")).content.decode()
    assert "$43.21" in body
    assert "$99.99" not in body


def test_payout_settings_validated_and_saved(portal, affiliate):
    url = reverse("portal:payout-settings")
    response = portal.post(url, {"method": "stripe_connect", "stripe_account_id": "nope"})
    assert response.status_code == 200
    assert not PayeeProfile.objects.exists()
    response = portal.post(
        url,
        {
            "method": "bank_csv",
            "bank_account_name": "Ann",
            "bank_iban": "DE89 3704 0044 0532 0130 00",
            "bank_bic": "COBADEFFXXX",
        },
    )
    assert response.status_code == 302
    profile = PayeeProfile.objects.get(
        payee_type=Account.PayeeType.AFFILIATE, payee_id=affiliate.pk
    )
    assert profile.bank_iban == "DE89370400440532013000"
    response = portal.post(url, {"method": "paypal", "paypal_email": "Ann@PayPal.example"})
    profile.refresh_from_db()
    assert (profile.method, profile.paypal_email, profile.bank_iban) == (
        "paypal",
        "ann@paypal.example",
        "",
    )
    assert portal.get(url).context["form"].initial["method"] == "paypal"


def test_post_without_csrf_is_refused(affiliate):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(affiliate.user)
    assert client.post(reverse("portal:links"), {"campaign": "x"}).status_code == 403
