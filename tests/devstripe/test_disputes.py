"""Disputes on the fake Stripe: the dispute test card, the API, and dj-stripe's sync."""

from __future__ import annotations

import pytest
import stripe
from djstripe import models as djm

from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import EventFeed, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db

DISPUTE_FEE = 1500  # Stripe's dispute fee, withdrawn with the disputed amount


@pytest.fixture
def disputed_subscription(stripe_fake):
    price = make_price(unit_amount=4200)
    customer, pm = make_customer(card="pm_card_createDispute")
    sub = subscribe(customer, pm, price)
    charge_id = invoice_charge_id(sub.latest_invoice)
    return sub, charge_id


def _events_of(type_: str) -> list[dict]:
    page = stripe.Event.list(type=type_, limit=100)
    return page.last_response.data["data"]


def test_a_charge_with_the_dispute_card_succeeds_then_is_disputed(disputed_subscription):
    sub, charge_id = disputed_subscription
    charge = stripe.Charge.retrieve(charge_id)
    assert sub.status == "active"
    assert (charge.status, charge.paid, charge.disputed) == ("succeeded", True, True)
    assert charge.payment_method_details["card"]["last4"] == "0259"

    disputes = stripe.Dispute.list(charge=charge_id)["data"]
    assert len(disputes) == 1
    dispute = stripe.Dispute.retrieve(disputes[0].id)
    assert dispute.id.startswith("dp_")
    assert (dispute.amount, dispute.currency) == (4200, "usd")
    assert (dispute.status, dispute.reason) == ("needs_response", "fraudulent")
    assert (dispute.charge, dispute.payment_intent) == (charge_id, charge.payment_intent)
    assert dispute.is_charge_refundable is False
    # Opening it withdrew the disputed amount and Stripe's dispute fee.
    [withdrawal] = dispute.balance_transactions
    assert (withdrawal.type, withdrawal.reporting_category) == ("adjustment", "dispute")
    assert (withdrawal.amount, withdrawal.fee, withdrawal.net) == (
        -4200,
        DISPUTE_FEE,
        -4200 - DISPUTE_FEE,
    )
    assert (withdrawal.currency, withdrawal.source) == ("usd", dispute.id)
    assert dispute.evidence_details["due_by"] > dispute.created

    [event] = _events_of("charge.dispute.created")
    assert event["data"]["object"]["id"] == dispute.id
    # Stripe opens the dispute after the payment: its events come first.
    types = [e["type"] for e in sorted(EventFeed().new_events(), key=lambda e: e["created"])]
    assert types.index("invoice.paid") < types.index("charge.dispute.created")


def test_other_cards_are_not_disputed(stripe_fake):
    price = make_price(unit_amount=1000)
    customer, pm = make_customer()
    sub = subscribe(customer, pm, price)
    charge = stripe.Charge.retrieve(invoice_charge_id(sub.latest_invoice))

    assert charge.disputed is False
    assert stripe.Dispute.list()["data"] == []
    assert _events_of("charge.dispute.created") == []


def test_dispute_list_filters_and_unknown_ids(disputed_subscription):
    _sub, charge_id = disputed_subscription
    payment_intent = stripe.Charge.retrieve(charge_id).payment_intent
    assert len(stripe.Dispute.list(payment_intent=payment_intent)["data"]) == 1
    assert stripe.Dispute.list(charge="ch_other")["data"] == []
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Dispute.retrieve("dp_missing")
    assert exc.value.http_status == 404


def test_dj_stripe_syncs_the_dispute(disputed_subscription, stripe_fake):
    _sub, charge_id = disputed_subscription
    data = stripe.Dispute.list(charge=charge_id)["data"][0]

    dispute = djm.Dispute.sync_from_stripe_data(
        stripe.Dispute.retrieve(data.id), api_key=stripe_fake.api_key
    )

    assert dispute.id == data.id
    assert (dispute.amount, dispute.currency) == (4200, "usd")
    assert (dispute.status, dispute.reason) == ("needs_response", "fraudulent")
    assert dispute.charge.id == charge_id
    assert dispute.charge.disputed is True
    assert dispute.payment_intent.id == dispute.charge.payment_intent.id
    assert dispute.djstripe_owner_account == stripe_fake.account


def test_dj_stripe_processes_the_dispute_created_event(disputed_subscription):
    _sub, charge_id = disputed_subscription
    [event] = _events_of("charge.dispute.created")

    processed = djm.Event.process(event)

    assert processed.type == "charge.dispute.created"
    dispute = djm.Dispute.objects.get(id=event["data"]["object"]["id"])
    assert dispute.charge.id == charge_id
    assert dispute.status == "needs_response"
    assert dispute.amount == 4200
