"""Prorations on subscription changes in the fake, to the second as Stripe computes them.

Every change happens on a test clock at 2030-01-11T03:25:45Z, in the first monthly period
(2030-01-01 .. 2030-02-01, 2 678 400 s), so 1 802 055 s are left:

- 3000 * 1802055 / 2678400 = 2018.43 -> 2018
- 5000 * 1802055 / 2678400 = 3364.05 -> 3364

An upgrade from 3000 to 5000 is therefore -2018 + 3364 = +1346, a downgrade -1346.
"""

from __future__ import annotations

import pytest
import stripe

from devstripe.pricing import prorated
from tests.devstripe.clock_helpers import (
    DAY,
    FEB_1,
    JAN_1,
    MAR_1,
    advance,
    change_price,
    clock_customer,
    events,
    invoices,
    make_clock,
    make_price,
    subscribe,
)
from tests.stripe_paths import invoice_charge_id

pytestmark = pytest.mark.django_db

CHANGE_AT = JAN_1 + 10 * DAY + 12345


@pytest.fixture
def setup(stripe_fake):
    """A clock at CHANGE_AT and a customer subscribed to `small` (3000) since JAN_1."""
    clock = make_clock()
    customer, pm = clock_customer(clock)
    small, large = make_price(3000, "Small"), make_price(5000, "Large")
    sub = subscribe(customer, pm, small)
    advance(clock, CHANGE_AT)
    return {"clock": clock, "customer": customer, "sub": sub, "small": small, "large": large}


def _pending_items(customer_id):
    data = stripe.InvoiceItem.list(customer=customer_id, pending=True).last_response.data["data"]
    return sorted(
        [(i["amount"], i["proration"], i["period"]["start"], i["period"]["end"]) for i in data]
    )


def _proration(line):
    """Whether an invoice line is a proration (under its ``parent`` at our API version)."""
    parent = line["parent"]
    return parent[parent["type"]]["proration"]


def test_prorated_rounds_half_away_from_zero():
    assert prorated(3000, 1802055, 2678400) == 2018
    assert prorated(-5000, 1802055, 2678400) == -3364
    assert prorated(1, 1, 2) == 1 and prorated(-1, 1, 2) == -1
    assert prorated(999, 0, 10) == 0 and prorated(999, 10, 10) == 999
    with pytest.raises(ValueError):
        prorated(100, 11, 10)


def test_upgrade_creates_pending_prorations_billed_at_the_renewal(setup):
    sub = setup["sub"]
    updated = change_price(sub, setup["large"])  # create_prorations is the default

    assert updated["items"].data[0].price.id == setup["large"].id
    assert _pending_items(setup["customer"].id) == [
        (-2018, True, CHANGE_AT, FEB_1),
        (3364, True, CHANGE_AT, FEB_1),
    ]
    assert len(invoices(sub)) == 1  # nothing invoiced yet

    advance(setup["clock"], FEB_1 + DAY)

    renewal = invoices(sub)[-1]
    assert (renewal["amount_paid"], renewal["billing_reason"]) == (
        5000 + 3364 - 2018,
        "subscription_cycle",
    )
    lines = sorted(
        (line["amount"], _proration(line), line["period"]["start"], line["period"]["end"])
        for line in renewal["lines"]["data"]
    )
    assert lines == [
        (-2018, True, CHANGE_AT, FEB_1),
        (3364, True, CHANGE_AT, FEB_1),
        (5000, False, FEB_1, MAR_1),
    ]
    credit = next(line for line in renewal["lines"]["data"] if line["amount"] < 0)
    assert credit["pricing"]["price_details"]["price"] == setup["small"].id
    assert credit["description"] == "Unused time on 1 \N{MULTIPLICATION SIGN} Small"
    assert _pending_items(setup["customer"].id) == []


def test_downgrade_credit_reduces_the_renewal(setup):
    sub = setup["sub"]
    change_price(sub, setup["large"], proration_behavior="none")
    assert _pending_items(setup["customer"].id) == []

    change_price(sub, setup["small"])

    assert _pending_items(setup["customer"].id) == [
        (-3364, True, CHANGE_AT, FEB_1),
        (2018, True, CHANGE_AT, FEB_1),
    ]
    advance(setup["clock"], FEB_1 + DAY)
    assert invoices(sub)[-1]["amount_paid"] == 3000 - 1346


def test_always_invoice_upgrade_is_invoiced_and_paid_at_once(setup):
    sub = setup["sub"]
    seen = {e["id"] for e in events()}

    change_price(sub, setup["large"], proration_behavior="always_invoice")

    bill = invoices(sub)[-1]
    assert (bill["created"], bill["status"], bill["amount_paid"], bill["billing_reason"]) == (
        CHANGE_AT,
        "paid",
        1346,
        "subscription_update",
    )
    assert sorted((line["amount"], _proration(line)) for line in bill["lines"]["data"]) == [
        (-2018, True),
        (3364, True),
    ]
    assert stripe.Subscription.retrieve(sub.id).latest_invoice == bill["id"]
    assert [e["type"] for e in events(after=seen)] == [
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    charge = stripe.Charge.retrieve(invoice_charge_id(bill["id"]))
    assert (charge.amount, charge.created) == (1346, CHANGE_AT)
    advance(setup["clock"], FEB_1 + DAY)
    assert invoices(sub)[-1]["amount_paid"] == 5000  # nothing left pending


def test_always_invoice_downgrade_charges_nothing_and_credits_the_customer(setup):
    sub, customer = setup["sub"], setup["customer"]
    change_price(sub, setup["large"], proration_behavior="none")

    change_price(sub, setup["small"], proration_behavior="always_invoice")

    bill = invoices(sub)[-1]
    payments = stripe.InvoicePayment.list(invoice=bill["id"]).data
    assert (bill["status"], bill["amount_due"], bill["amount_paid"], payments) == (
        "paid",
        0,
        0,
        [],
    )
    assert (bill["starting_balance"], bill["ending_balance"]) == (0, -1346)
    assert stripe.Customer.retrieve(customer.id).balance == -1346

    advance(setup["clock"], FEB_1 + DAY)

    renewal = invoices(sub)[-1]
    assert (renewal["starting_balance"], renewal["amount_paid"], renewal["ending_balance"]) == (
        -1346,
        3000 - 1346,
        0,
    )
    assert stripe.Customer.retrieve(customer.id).balance == 0


def test_quantity_change_with_a_proration_date(setup):
    sub = setup["sub"]
    item_id = stripe.Subscription.retrieve(sub.id)["items"].data[0].id
    at = JAN_1 + 15 * DAY  # 16 of 31 days left

    stripe.Subscription.modify(sub.id, items=[{"id": item_id, "quantity": 3}], proration_date=at)

    # 3000 * 16/31 = 1548.39 -> 1548; 9000 * 16/31 = 4645.16 -> 4645
    assert _pending_items(setup["customer"].id) == [
        (-1548, True, at, FEB_1),
        (4645, True, at, FEB_1),
    ]
    with pytest.raises(stripe.InvalidRequestError) as outside:
        stripe.Subscription.modify(
            sub.id, items=[{"id": item_id, "quantity": 2}], proration_date=FEB_1 + 1
        )
    assert outside.value.http_status == 400


def test_none_and_metadata_only_changes_create_no_prorations(setup):
    sub = setup["sub"]
    stripe.Subscription.modify(sub.id, metadata={"note": "x"})
    change_price(sub, setup["large"], proration_behavior="none")

    assert _pending_items(setup["customer"].id) == []
    advance(setup["clock"], FEB_1 + DAY)
    assert invoices(sub)[-1]["amount_paid"] == 5000


def test_a_trialing_subscription_is_not_prorated(stripe_fake):
    clock = make_clock()
    customer, pm = clock_customer(clock)
    sub = subscribe(customer, pm, make_price(3000), trial_period_days=14)
    advance(clock, JAN_1 + 3 * DAY)

    change_price(sub, make_price(5000))

    assert _pending_items(customer.id) == []
