# ruff: noqa: F811  (pytest fixtures imported from api_helpers are parameters here)
"""Renewals end to end: a customer on a Stripe test clock subscribes through our API, the clock
advances, the fake Stripe delivers its signed events to our webhook inbox (a live server), and
the ledger, the subscription state and MRR follow: one revenue posting per paid invoice, the
prorated amount of a mid-period plan change on the next renewal, churn at the period end.

The API cannot put a customer on a test clock (nor should it): the user's Stripe customer is
created on the clock first and recorded as their BillingCustomer, which the API then uses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
import stripe
from djstripe import models as djm

from analytics.models import MRRMovement
from ledger.models import Transaction
from subscriptions.models import BillingCustomer, SubscriptionState, WebhookEvent
from subscriptions.services.invoice_postings import INVOICE_PAID_SOURCE, invoice_paid_key
from tests.devstripe.clock_helpers import APR_1, DAY, FEB_1, JAN_1, MAR_1, advance, make_clock
from tests.stripe_harness import make_webhook_endpoint
from tests.subscriptions.api_helpers import (  # noqa: F401 (fixtures)
    _clear_throttles,
    alice,
    catalog,
    client_for,
)

SUBS = "/api/v1/subscriptions/"
# Mid-period in February (2030-02-01 .. 2030-03-01: 28 days), at an odd second.
CHANGE_AT = FEB_1 + 10 * DAY + 12345


def _at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _prorated(amount: int, *, start: int, end: int, at: int) -> int:
    """Stripe's proration of a whole period's ``amount`` from ``at`` to ``end``."""
    exact = Decimal(amount) * Decimal(end - at) / Decimal(end - start)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _advance_and_wait(stripe_fake, clock, frozen_time: int) -> None:
    """Advance the clock; wait until our inbox has answered every event up to ``ready``."""
    advanced = advance(clock, frozen_time)
    ready = next(
        e
        for e in stripe.Event.list(limit=100).last_response.data["data"]
        if e["type"] == "test_helpers.test_clock.ready"
        and e["data"]["object"]["frozen_time"] == advanced.frozen_time
    )
    stripe_fake.wait_for_delivery(lambda d: d["event"] == ready["id"])


def _revenue_postings() -> list[tuple[str, list[int]]]:
    postings = Transaction.objects.filter(source=INVOICE_PAID_SOURCE).order_by("posted_at", "pk")
    return [
        (p.idempotency_key, sorted(p.entries.values_list("amount", flat=True))) for p in postings
    ]


def _invoice_ids(sub_id: str) -> list[str]:
    data = stripe.Invoice.list(subscription=sub_id, limit=100).last_response.data["data"]
    return [i["id"] for i in sorted(data, key=lambda i: i["created"])]


@pytest.mark.django_db(transaction=True)
def test_renewal_proration_and_churn_through_the_webhook_inbox(
    stripe_fake, live_server, transactional_db, celery_eager, catalog, alice
):
    endpoint = make_webhook_endpoint(url=live_server.url + "/stripe/webhook/")
    stripe_fake.register_webhook(endpoint.url, endpoint.secret)
    clock = make_clock(JAN_1)
    customer = stripe.Customer.create(email=alice.email, test_clock=clock.id)
    BillingCustomer.objects.create(user=alice, stripe_customer_id=customer.id)
    client = client_for(alice)

    created = client.post(
        SUBS,
        {"price": catalog["basic"].stripe_price_id, "payment_method": "pm_card_visa"},
        format="json",
    )
    assert created.status_code == 201, created.content
    sub_id = created.json()["id"]
    assert created.json()["current_period_end"] == _at(FEB_1).isoformat().replace("+00:00", "Z")

    # One month: the renewal is paid and booked once, under its own invoice's key.
    _advance_and_wait(stripe_fake, clock, FEB_1 + DAY)
    first, second = _invoice_ids(sub_id)
    assert _revenue_postings() == [
        (invoice_paid_key(first), [-1000, 1000]),
        (invoice_paid_key(second), [-1000, 1000]),
    ]
    mirrored = djm.Subscription.objects.get(id=sub_id)
    item = mirrored.stripe_data["items"]["data"][0]
    assert (_at(item["current_period_start"]), _at(item["current_period_end"])) == (
        _at(FEB_1),
        _at(MAR_1),
    )
    state = SubscriptionState.objects.get(stripe_subscription_id=sub_id)
    assert (state.status, state.mrr, state.as_of) == ("active", 1000, _at(FEB_1))

    # Mid-period upgrade to 3 seats of team (graduated: 3 x 1500), prorated by default.
    _advance_and_wait(stripe_fake, clock, CHANGE_AT)
    changed = client.post(
        f"{SUBS}{sub_id}/change",
        {"price": catalog["team"].stripe_price_id, "quantity": 3},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    credit = -_prorated(1000, start=FEB_1, end=MAR_1, at=CHANGE_AT)
    charge = _prorated(4500, start=FEB_1, end=MAR_1, at=CHANGE_AT)
    assert (credit, charge) == (-638, 2870)  # 1000 and 4500 * 1542855 / 2419200 s

    _advance_and_wait(stripe_fake, clock, MAR_1 + DAY)
    third = _invoice_ids(sub_id)[2]
    renewal = 4500 + charge + credit
    assert _revenue_postings()[2] == (invoice_paid_key(third), [-renewal, renewal])
    assert renewal == 6732
    state.refresh_from_db()
    assert (state.status, state.mrr, state.as_of) == ("active", 4500, _at(MAR_1))

    # Cancel at the period end: nothing happens until the clock gets there.
    canceled = client.post(f"{SUBS}{sub_id}/cancel", {"at_period_end": True}, format="json")
    assert canceled.status_code == 200, canceled.content
    _advance_and_wait(stripe_fake, clock, APR_1 + DAY)

    state.refresh_from_db()
    assert (state.status, state.mrr, state.as_of) == ("canceled", 0, _at(APR_1))
    movements = MRRMovement.objects.filter(stripe_subscription_id=sub_id).order_by("occurred_at")
    assert [(m.kind, m.old_mrr, m.new_mrr, m.occurred_at) for m in movements] == [
        ("new", 0, 1000, _at(JAN_1)),
        ("expansion", 1000, 4500, _at(CHANGE_AT)),
        ("churn", 4500, 0, _at(APR_1)),
    ]
    assert len(_revenue_postings()) == 3  # no renewal after the cancellation
    deliveries = stripe_fake.deliveries()
    assert {d["status"] for d in deliveries} == {200}, deliveries
    assert "customer.subscription.deleted" in {d["type"] for d in deliveries}
    failed = WebhookEvent.objects.exclude(status=WebhookEvent.Status.SUCCEEDED)
    assert list(failed.values_list("type", "last_error")) == []
