"""Stripe test clocks on the fake: renewals, trial ends and cancellations at period end."""

from __future__ import annotations

import pytest
import stripe

from tests.devstripe.clock_helpers import (
    APR_1,
    DAY,
    FEB_1,
    JAN_1,
    MAR_1,
    advance,
    clock_customer,
    events,
    invoices,
    make_clock,
    make_price,
    subscribe,
)

pytestmark = pytest.mark.django_db


def test_clock_create_retrieve_list_advance_and_delete(stripe_fake):
    clock = make_clock()
    assert (clock.object, clock.frozen_time, clock.status, clock.name) == (
        "test_helpers.test_clock",
        JAN_1,
        "ready",
        "renewals",
    )
    assert stripe.test_helpers.TestClock.retrieve(clock.id).frozen_time == JAN_1
    assert [c.id for c in stripe.test_helpers.TestClock.list().data] == [clock.id]

    advanced = advance(clock, JAN_1 + DAY)
    assert (advanced.frozen_time, advanced.status) == (JAN_1 + DAY, "ready")
    with pytest.raises(stripe.InvalidRequestError) as backwards:
        advance(clock, JAN_1)
    assert backwards.value.http_status == 400

    customer, _ = clock_customer(clock)
    assert customer.test_clock == clock.id
    assert stripe.test_helpers.TestClock.delete(clock.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Customer.retrieve(customer.id)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe.test_helpers.TestClock.retrieve(clock.id)
    assert missing.value.http_status == 404
    types = [e["type"] for e in events() if e["type"].startswith("test_helpers.")]
    assert types == [
        "test_helpers.test_clock.created",
        "test_helpers.test_clock.advancing",
        "test_helpers.test_clock.ready",
        "test_helpers.test_clock.deleted",
    ]


def test_a_customer_on_a_clock_subscribes_at_the_frozen_time(stripe_fake):
    clock = make_clock()
    customer, pm = clock_customer(clock)
    sub = subscribe(customer, pm, make_price(3000))

    assert customer.created == JAN_1
    assert (sub.start_date, sub.created, sub.billing_cycle_anchor) == (JAN_1, JAN_1, JAN_1)
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (JAN_1, FEB_1)
    (first,) = invoices(sub)
    assert (first["created"], first["status_transitions"]["paid_at"]) == (JAN_1, JAN_1)
    assert (first["amount_paid"], first["billing_reason"]) == (3000, "subscription_create")
    assert {
        e["created"]
        for e in events()
        if not e["type"].startswith(("price.", "plan.", "product.", "test_helpers."))
    } == {JAN_1}


def test_advancing_renews_each_period_with_a_paid_invoice(stripe_fake):
    clock = make_clock()
    customer, pm = clock_customer(clock)
    sub = subscribe(customer, pm, make_price(3000))
    seen = {e["id"] for e in events()}

    clock = advance(clock, MAR_1 + DAY)

    assert (clock.frozen_time, clock.status) == (MAR_1 + DAY, "ready")
    renewed = stripe.Subscription.retrieve(sub.id)
    assert renewed.status == "active"
    item = renewed["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (MAR_1, APR_1)
    assert renewed.billing_cycle_anchor == JAN_1
    bills = invoices(sub)
    assert [(i["created"], i["amount_paid"], i["status"]) for i in bills] == [
        (JAN_1, 3000, "paid"),
        (FEB_1, 3000, "paid"),
        (MAR_1, 3000, "paid"),
    ]
    assert [i["billing_reason"] for i in bills[1:]] == ["subscription_cycle"] * 2
    assert [i["status_transitions"]["paid_at"] for i in bills[1:]] == [FEB_1, MAR_1]
    assert [line["period"] for line in bills[1]["lines"]["data"]] == [
        {"start": FEB_1, "end": MAR_1}
    ]
    assert renewed.latest_invoice == bills[2]["id"]

    new = events(after=seen)
    per_renewal = [
        "invoice.created",
        "customer.subscription.updated",
        "invoice.finalized",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    assert [e["type"] for e in new] == [
        "test_helpers.test_clock.advancing",
        *per_renewal,
        *per_renewal,
        "test_helpers.test_clock.ready",
    ]
    assert [e["created"] for e in new if e["type"] == "invoice.paid"] == [FEB_1, MAR_1]
    updated = next(e for e in new if e["type"] == "customer.subscription.updated")
    assert updated["created"] == FEB_1
    assert updated["data"]["object"]["items"]["data"][0]["current_period_start"] == FEB_1
    previous = updated["data"]["previous_attributes"]
    [previous_item] = previous["items"]["data"]
    assert (previous_item["current_period_start"], previous_item["current_period_end"]) == (
        JAN_1,
        FEB_1,
    )
    assert previous["latest_invoice"] == bills[0]["id"]


def test_a_trial_end_activates_and_invoices_the_first_period(stripe_fake):
    clock = make_clock()
    customer, pm = clock_customer(clock)
    sub = subscribe(customer, pm, make_price(3000), trial_period_days=14)
    assert sub.status == "trialing"
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (JAN_1, JAN_1 + 14 * DAY)
    assert invoices(sub) == []

    advance(clock, JAN_1 + 20 * DAY)

    active = stripe.Subscription.retrieve(sub.id)
    trial_end = JAN_1 + 14 * DAY
    assert (active.status, active.billing_cycle_anchor) == ("active", trial_end)
    item = active["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (trial_end, FEB_1 + 14 * DAY)
    (bill,) = invoices(sub)
    assert (bill["created"], bill["amount_paid"], bill["billing_reason"]) == (
        trial_end,
        3000,
        "subscription_cycle",
    )


def test_cancel_at_period_end_ends_the_subscription_at_the_period_end(stripe_fake):
    clock = make_clock()
    customer, pm = clock_customer(clock)
    sub = subscribe(customer, pm, make_price(3000))
    advance(clock, JAN_1 + 5 * DAY)
    pending = stripe.Subscription.modify(sub.id, cancel_at_period_end=True)
    assert (pending.cancel_at, pending.canceled_at) == (FEB_1, JAN_1 + 5 * DAY)

    advance(clock, FEB_1 + DAY)

    ended = stripe.Subscription.retrieve(sub.id)
    assert (ended.status, ended.ended_at, ended.canceled_at) == (
        "canceled",
        FEB_1,
        JAN_1 + 5 * DAY,
    )
    assert len(invoices(sub)) == 1  # no renewal
    (deleted,) = [e for e in events() if e["type"] == "customer.subscription.deleted"]
    assert (deleted["created"], deleted["data"]["object"]["status"]) == (FEB_1, "canceled")


def test_a_declined_renewal_leaves_the_invoice_open_and_the_subscription_past_due(stripe_fake):
    clock = make_clock()
    customer, pm = clock_customer(clock)
    sub = subscribe(customer, pm, make_price(3000))
    failing = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=customer.id)
    stripe.Subscription.modify(sub.id, default_payment_method=failing.id)
    seen = {e["id"] for e in events()}

    advance(clock, FEB_1 + DAY)

    assert stripe.Subscription.retrieve(sub.id).status == "past_due"
    renewal = invoices(sub)[1]
    assert (renewal["status"], renewal["amount_due"], renewal["amount_paid"]) == ("open", 3000, 0)
    types = [e["type"] for e in events(after=seen)]
    assert types.index("invoice.payment_failed") < types.index("test_helpers.test_clock.ready")
    statuses = [
        e["data"]["object"]["status"]
        for e in events(after=seen)
        if e["type"] == "customer.subscription.updated"
    ]
    assert statuses == ["active", "past_due"]


def test_subscriptions_of_customers_without_a_clock_do_not_move(stripe_fake):
    clock = make_clock()
    price = make_price(3000)
    other = stripe.Customer.create(email="realtime@example.com")
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=other.id)
    unclocked = subscribe(other, pm, price)

    advance(clock, JAN_1 + 90 * DAY)

    assert stripe.Subscription.retrieve(unclocked.id)["items"].data[0].current_period_end == (
        unclocked["items"].data[0].current_period_end
    )
    assert len(invoices(unclocked)) == 1
