"""The affiliate journey end to end, through the public surfaces: a visitor clicks /r/<code>,
the referral cookie rides along to the subscribe API, Stripe's signed events reach the webhook
inbox, the commission is HELD with the program's amount, APPROVED after the hold, and paid by a
payout batch; the ledger balances throughout."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.conf import settings
from rest_framework.test import APIClient

from affiliates.models import Commission, Referral
from affiliates.services.commissions import commission_review, commissions_approve_due
from affiliates.services.tracking import (
    CLICK_BUFFER_KEY,
    CLICK_PROCESSING_KEY,
    click_buffer_flush,
)
from ledger.models import PayeeProfile
from ledger.payouts import payout_batch_run
from ledger.selectors import payee_balance, trial_balance
from tests.accounts.factories import UserFactory
from tests.affiliates.factories import AffiliateFactory, ProgramFactory, ReferralLinkFactory
from tests.stripe_harness import make_webhook_endpoint, post_signed_event
from tests.subscriptions.api_helpers import alice, catalog  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]


@pytest.fixture(autouse=True)
def _empty_click_buffer():
    """Clicks other tests left buffered in Redis belong to their (rolled back) links."""
    if settings.REDIS_URL:
        from django_redis import get_redis_connection

        get_redis_connection("default").delete(CLICK_BUFFER_KEY, CLICK_PROCESSING_KEY)


def _deliver_new_events(client, endpoint, seen: set[str], on_commit) -> None:
    """Deliver the fake Stripe's new events to our webhook inbox, signed as Stripe signs; the
    inbox queues processing on commit, which the test's transaction runs here."""
    events = stripe.Event.list(limit=100).last_response.data["data"]
    for event in sorted(events, key=lambda e: e["created"]):
        if event["id"] in seen:
            continue
        seen.add(event["id"])
        with on_commit(execute=True):
            response = post_signed_event(client, endpoint, json.dumps(event).encode())
        assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"commission_type": "percent", "commission_rate": Decimal("25")}, 250),  # 25% of 1000
        ({"commission_type": "flat", "commission_flat_amount": 700}, 700),
    ],
)
def test_click_cookie_subscribe_webhook_commission_payout(
    catalog,  # noqa: F811
    alice,  # noqa: F811
    rule,
    expected,
    django_capture_on_commit_callbacks,
):
    program = ProgramFactory(hold_days=30, minimum_payout=100, **rule)
    affiliate = AffiliateFactory(program=program, user=UserFactory(email="pat@partners.example"))
    link = ReferralLinkFactory(affiliate=affiliate, code="journey")
    PayeeProfile.objects.create(
        payee_type="affiliate",
        payee_id=affiliate.pk,
        method=PayeeProfile.Method.PAYPAL,
        paypal_email="partner@paypal.example",
    )
    endpoint = make_webhook_endpoint()
    seen = {e["id"] for e in stripe.Event.list(limit=100).last_response.data["data"]}

    visitor = APIClient()
    click = visitor.get("/r/journey")
    assert click.status_code == 302
    assert settings.AFFILIATE_REFERRAL_COOKIE in visitor.cookies
    click_buffer_flush()  # the beat's job when clicks are buffered in Redis; else a no-op
    assert link.clicks.count() == 1
    visitor.force_authenticate(alice)
    response = visitor.post(
        "/api/v1/subscriptions/",
        {"price": catalog["basic"].stripe_price_id, "payment_method": "pm_card_visa"},
        format="json",
    )
    assert response.status_code == 201, response.content
    referral = Referral.objects.get()
    assert (referral.link, referral.source) == (link, Referral.Source.COOKIE)

    _deliver_new_events(visitor, endpoint, seen, django_capture_on_commit_callbacks)
    # Redelivery of everything changes nothing.
    _deliver_new_events(visitor, endpoint, set(), django_capture_on_commit_callbacks)

    commission = Commission.objects.get()
    assert (commission.status, commission.amount, commission.base_amount) == (
        "held",
        expected,
        1000,
    )
    assert payee_balance(payee_type="affiliate", payee_id=affiliate.pk) == {"usd": expected}

    # The visitor subscribed seconds after the click: the fraud rules flag it for staff.
    assert commission.flags == ["fast_conversion"]
    assert commissions_approve_due(now=commission.available_at + timedelta(seconds=1)) == 0
    commission_review(commission=commission, actor=None, approve=True, note="looked fine")
    assert commissions_approve_due(now=commission.available_at - timedelta(seconds=1)) == 0
    assert commissions_approve_due(now=commission.available_at + timedelta(seconds=1)) == 1
    batch = payout_batch_run(
        payee_type="affiliate", as_of=(commission.available_at + timedelta(days=1)).date()
    )
    commission.refresh_from_db()
    assert (batch.status, commission.status) == ("completed", "paid")
    assert [(p.amount, p.status) for p in batch.payouts.all()] == [(expected, "paid")]
    assert payee_balance(payee_type="affiliate", payee_id=affiliate.pk).get("usd", 0) == 0
    assert set(trial_balance().values()) == {0}
