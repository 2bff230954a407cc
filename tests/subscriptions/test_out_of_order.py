"""Events delivered out of order end as in order (issue 14, found by the webhook storm test in
tests/faults/test_webhook_storm.py): MRR movements are replayed in event order per customer,
and a "first payment only" commission goes to the first invoice paid, not the first delivered.

Subscriptions live on a Stripe test clock, so their changes are days apart in event time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe

from affiliates.models import Commission, Program, Referral
from analytics.models import MRRMovement
from subscriptions.models import SubscriptionState
from tests.affiliates.factories import AffiliateFactory, ProgramFactory
from tests.stripe_harness import SignedInbox
from tests.subscriptions.effects_helpers import key, make_price

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]

DAY = 24 * 3600


@pytest.fixture
def inbox(client, django_capture_on_commit_callbacks):
    return SignedInbox(client, django_capture_on_commit_callbacks)


def _clocked_customer() -> tuple[Any, Any]:
    clock = stripe.test_helpers.TestClock.create(frozen_time=int(datetime.now(UTC).timestamp()))
    customer = stripe.Customer.create(
        email="late@customer.test", test_clock=clock.id, idempotency_key=key("cus")
    )
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    return clock, customer


def _advance(clock, seconds: int) -> None:
    now = stripe.test_helpers.TestClock.retrieve(clock.id).frozen_time
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=now + seconds)


def _movements() -> list[tuple[str, int, int]]:
    return [
        (m.kind, m.old_mrr, m.new_mrr) for m in MRRMovement.objects.order_by("occurred_at", "pk")
    ]


def _subscription_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"].startswith("customer.subscription.")]


def test_subscription_events_in_reverse_order_record_the_in_order_movements(stripe_fake, inbox):
    clock, customer = _clocked_customer()
    price = make_price(unit_amount=2000)
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": price.id}], idempotency_key=key("sub")
    )
    _advance(clock, DAY)
    item = stripe.Subscription.retrieve(sub.id)["items"]["data"][0]
    stripe.Subscription.modify(
        sub.id, items=[{"id": item.id, "quantity": 3}], idempotency_key=key("up")
    )
    _advance(clock, DAY)
    stripe.Subscription.cancel(sub.id)
    events = inbox.new()
    changes = _subscription_events(events)
    assert len({e["created"] for e in changes}) >= 3  # days apart

    inbox.deliver(list(reversed(changes)))
    inbox.deliver(changes)  # redelivered: nothing twice

    assert _movements() == [("new", 0, 2000), ("expansion", 2000, 6000), ("churn", 6000, 0)]
    state = SubscriptionState.objects.get(stripe_subscription_id=sub.id)
    assert (state.status, state.mrr) == ("canceled", 0)
    assert state.as_of == datetime.fromtimestamp(changes[-1]["created"], tz=UTC)


def test_a_late_event_reclassifies_the_customers_later_movements(stripe_fake, inbox):
    """A second subscription's creation delivered after the first's cancellation: the
    cancellation is a contraction (the customer still pays), not a churn."""
    clock, customer = _clocked_customer()
    first = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": make_price(unit_amount=2000).id}],
        idempotency_key=key("sub1"),
    )
    _advance(clock, DAY)
    stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": make_price(unit_amount=5000).id}],
        idempotency_key=key("sub2"),
    )
    _advance(clock, DAY)
    stripe.Subscription.cancel(first.id)
    changes = _subscription_events(inbox.new())
    second_created = [e for e in changes if e["type"] == "customer.subscription.created"][1]

    inbox.deliver([e for e in changes if e is not second_created])
    assert ("contraction", 2000, 0) not in _movements()  # a churn, as far as we know yet
    inbox.deliver([second_created])

    assert _movements() == [("new", 0, 2000), ("expansion", 0, 5000), ("contraction", 2000, 0)]


def test_a_renewal_paid_event_before_the_first_invoice_s_pays_the_first(stripe_fake, inbox):
    program = ProgramFactory(commission_rate="10", duration=Program.Duration.FIRST_PAYMENT)
    affiliate = AffiliateFactory(program=program)
    clock, customer = _clocked_customer()
    Referral.objects.create(
        affiliate=affiliate,
        stripe_customer_id=customer.id,
        source=Referral.Source.CODE,
        referred_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    sub = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": make_price(unit_amount=3000).id}],
        idempotency_key=key("sub"),
    )
    first_invoice = sub.latest_invoice
    _advance(clock, 31 * DAY)
    renewal = stripe.Subscription.retrieve(sub.id).latest_invoice
    assert renewal != first_invoice
    events = inbox.new()
    paid = {e["data"]["object"]["id"]: e for e in events if e["type"] == "invoice.paid"}

    inbox.deliver([paid[renewal]])
    assert not Commission.objects.exists()  # not the first payment: that one is on its way
    inbox.deliver([paid[first_invoice]])
    inbox.deliver(events)

    commission = Commission.objects.get()
    assert (commission.stripe_invoice_id, commission.amount) == (first_invoice, 300)
