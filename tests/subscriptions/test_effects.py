"""What Stripe events do: ledger postings, subscription state, MRR movements, dunning.

Objects are created with the stripe client against the fake Stripe; the fake's own events are
processed through dj-stripe's ``Event.process`` (what the webhook inbox ends with), which fires
our receivers. Stripe's fees are booked too (``subscriptions.services.stripe_fees``): the
clearing balances below are net of the processing fee on each charge (2.9 % + 30 on the fake
Stripe) and of the dispute fee (1500).
"""

from __future__ import annotations

import copy
import time

import pytest
import stripe
from djstripe import models as djm

from analytics.models import MRRMovement
from ledger.chart import SystemAccount
from ledger.models import Transaction
from ledger.selectors import account_balance
from ledger.services import system_account
from subscriptions.models import DunningCase, SubscriptionState
from subscriptions.services.invoice_postings import DISPUTE_SOURCE, REFUND_SOURCE, invoice_paid_key
from subscriptions.services.stripe_fees import DISPUTE_FEE_SOURCE, STRIPE_FEE_SOURCE
from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import (
    EventFeed,
    key,
    make_customer,
    make_price,
    set_quantity,
    subscribe,
)

pytestmark = pytest.mark.django_db

# Stripe's processing fee on a card charge, and its dispute fee.
FEE_1000 = 59  # 2.9 % of 1000 = 29, + 30
FEE_1200 = 65  # 2.9 % of 1200 = 34.8 -> 35, + 30
FEE_3000 = 117  # 2.9 % of 3000 = 87, + 30
FEE_5000 = 175  # 2.9 % of 5000 = 145, + 30
DISPUTE_FEE = 1500


def _balance(code: SystemAccount) -> int:
    return account_balance(account=system_account(code)).get("usd", 0)


def _trial_balance_is_zero() -> bool:
    from django.db.models import Sum

    from ledger.models import Entry

    return all(
        row["total"] == 0
        for row in Entry.objects.values("currency").annotate(total=Sum("amount")).order_by()
    )


def _movements(sub_id: str) -> list[tuple[str, int, int]]:
    rows = MRRMovement.objects.filter(stripe_subscription_id=sub_id).order_by("pk")
    return [(m.kind, m.old_mrr, m.new_mrr) for m in rows]


def test_full_lifecycle_subscribe_pay_expand_cancel(stripe_fake):
    feed = EventFeed()
    price = make_price(unit_amount=1500)
    customer, pm = make_customer()

    sub = subscribe(customer, pm, price, quantity=2)
    feed.process_new()

    invoice = djm.Invoice.objects.get(id=sub.latest_invoice)
    posting = Transaction.objects.get(idempotency_key=invoice_paid_key(invoice.id))
    assert sorted(posting.entries.values_list("amount", flat=True)) == [-3000, 3000]
    assert _balance(SystemAccount.STRIPE_CLEARING) == 3000 - FEE_3000
    assert _balance(SystemAccount.REVENUE_SUBSCRIPTIONS) == -3000
    assert _trial_balance_is_zero()
    state = SubscriptionState.objects.get(stripe_subscription_id=sub.id)
    assert (state.status, state.mrr, state.currency) == ("active", 3000, "usd")
    assert _movements(sub.id) == [("new", 0, 3000)]

    set_quantity(sub, 5)  # prorated: pending items for the next invoice, nothing booked yet
    feed.process_new()
    period = stripe.Subscription.retrieve(sub.id)["items"]["data"][0]
    pending = stripe.InvoiceItem.list(customer=customer.id).data
    left = period.current_period_end - pending[0]["period"]["start"]
    length = period.current_period_end - period.current_period_start
    # Stripe: old and new amounts * seconds left / seconds in the period, rounded half up.
    assert sorted(i["amount"] for i in pending) == [
        -((2 * 3000 * left + length) // (2 * length)),
        (2 * 7500 * left + length) // (2 * length),
    ]
    assert {i["proration"] for i in pending} == {True}
    assert SubscriptionState.objects.get(stripe_subscription_id=sub.id).mrr == 7500
    assert _movements(sub.id)[-1] == ("expansion", 3000, 7500)

    stripe.Subscription.cancel(sub.id)
    feed.process_new()
    state = SubscriptionState.objects.get(stripe_subscription_id=sub.id)
    assert (state.status, state.mrr) == ("canceled", 0)
    assert _movements(sub.id) == [
        ("new", 0, 3000),
        ("expansion", 3000, 7500),
        ("churn", 7500, 0),
    ]
    # Revenue is what was paid; cancelling books nothing.
    assert _balance(SystemAccount.REVENUE_SUBSCRIPTIONS) == -3000
    assert _trial_balance_is_zero()


def test_the_same_event_processed_twice_has_one_effect(stripe_fake):
    feed = EventFeed()
    price = make_price(unit_amount=1000)
    customer, pm = make_customer()
    subscribe(customer, pm, price)
    events = feed.process_new()

    for event in events:  # redelivery: dj-stripe knows the event id
        djm.Event.process(copy.deepcopy(event))
    djm.Event.objects.all().delete()  # even when its record is gone, the effects are keyed
    for event in events:
        djm.Event.process(copy.deepcopy(event))

    assert Transaction.objects.filter(source="subscriptions.invoice_paid").count() == 1
    assert Transaction.objects.filter(source=STRIPE_FEE_SOURCE).count() == 1
    assert _balance(SystemAccount.STRIPE_CLEARING) == 1000 - FEE_1000
    assert MRRMovement.objects.count() == 1
    assert SubscriptionState.objects.count() == 1


def test_an_older_update_after_a_newer_one_changes_nothing(stripe_fake):
    feed = EventFeed()
    price = make_price(unit_amount=1000)
    customer, pm = make_customer()
    sub = subscribe(customer, pm, price, quantity=1)
    feed.process_new()

    set_quantity(sub, 3)
    older = [e for e in feed.new_events() if e["type"] == "customer.subscription.updated"]
    time.sleep(1.1)  # Stripe's `created` has one-second resolution
    set_quantity(sub, 2)
    newer = [e for e in feed.new_events() if e["type"] == "customer.subscription.updated"]
    assert len(older) == len(newer) == 1
    assert newer[0]["created"] > older[0]["created"]

    djm.Event.process(newer[0])
    state_before = SubscriptionState.objects.values().get(stripe_subscription_id=sub.id)
    movements_before = _movements(sub.id)
    djm.Event.process(older[0])

    assert SubscriptionState.objects.values().get(stripe_subscription_id=sub.id) == state_before
    assert state_before["mrr"] == 2000
    assert (
        _movements(sub.id)
        == movements_before
        == [
            ("new", 0, 1000),
            ("expansion", 1000, 2000),
        ]
    )


@pytest.mark.parametrize("partial", [True, False])
def test_refunds_reverse_the_invoice_posting_pro_rata_once_each(stripe_fake, partial):
    feed = EventFeed()
    price = make_price(unit_amount=2500)
    customer, pm = make_customer()
    sub = subscribe(customer, pm, price, quantity=2)  # 5000 paid
    feed.process_new()
    charge_id = invoice_charge_id(sub.latest_invoice)

    amounts = [1200, 800] if partial else [None]
    for amount in amounts:
        params = {"amount": amount} if amount else {}
        stripe.Refund.create(charge=charge_id, idempotency_key=key("re"), **params)
        events = feed.process_new()
        refunded = [e for e in events if e["type"] == "charge.refunded"]
        assert len(refunded) == 1
        # The same event id again, and a fresh id with the same content: no second posting.
        djm.Event.process(refunded[0])
        replay = copy.deepcopy(refunded[0])
        replay["id"] = replay["id"] + "_again"
        djm.Event.process(replay)

    reversals = Transaction.objects.filter(source=REFUND_SOURCE).order_by("pk")
    expected = [1200, 800] if partial else [5000]
    assert [sum(e.amount for e in r.entries.all() if e.amount > 0) for r in reversals] == expected
    assert all(r.idempotency_key.startswith("stripe:refund:re_") for r in reversals)
    # Stripe keeps its fee on refunds.
    assert _balance(SystemAccount.STRIPE_CLEARING) == 5000 - FEE_5000 - sum(expected)
    assert _balance(SystemAccount.REVENUE_SUBSCRIPTIONS) == -(5000 - sum(expected))
    assert _trial_balance_is_zero()


def test_refund_processed_before_its_invoice_paid_event_books_both_once(stripe_fake):
    feed = EventFeed()
    price = make_price(unit_amount=1000)
    customer, pm = make_customer()
    sub = subscribe(customer, pm, price)
    first = feed.new_events()
    paid = [e for e in first if e["type"] == "invoice.paid"]
    for event in first:
        if event["type"] != "invoice.paid":
            djm.Event.process(event)
    charge_id = invoice_charge_id(sub.latest_invoice)
    stripe.Refund.create(charge=charge_id, amount=400, idempotency_key=key("re"))
    # The invoice mirror is synced (invoice.finalized/… events) but not yet paid in it:
    djm.Invoice.sync_from_stripe_data(
        stripe.Invoice.retrieve(sub.latest_invoice), api_key=stripe_fake.api_key
    )
    feed.process_new()
    djm.Event.process(paid[0])

    assert Transaction.objects.filter(source="subscriptions.invoice_paid").count() == 1
    assert _balance(SystemAccount.STRIPE_CLEARING) == 1000 - FEE_1000 - 400
    assert _trial_balance_is_zero()


def test_dispute_reverses_the_disputed_amount_once(stripe_fake):
    feed = EventFeed()
    price = make_price(unit_amount=3000)
    # The fake disputes a charge made with Stripe's dispute test card, as Stripe does.
    customer, pm = make_customer(card="pm_card_createDispute")
    sub = subscribe(customer, pm, price)
    events = feed.new_events()
    types = [e["type"] for e in events]
    assert types.index("invoice.paid") < types.index("charge.dispute.created")
    for event in events:
        if event["type"] != "charge.dispute.created":
            djm.Event.process(event)
    assert _balance(SystemAccount.STRIPE_CLEARING) == 3000 - FEE_3000

    [created] = [e for e in events if e["type"] == "charge.dispute.created"]
    djm.Event.process(created)
    djm.Event.process(copy.deepcopy(created))  # redelivered
    replay = copy.deepcopy(created)
    replay["id"] = replay["id"] + "_again"  # a fresh event id for the same dispute
    djm.Event.process(replay)

    dispute = djm.Dispute.objects.get(id=created["data"]["object"]["id"])
    assert dispute.charge.id == invoice_charge_id(sub.latest_invoice)
    assert dispute.amount == 3000
    disputes = Transaction.objects.filter(source=DISPUTE_SOURCE)
    assert [d.idempotency_key for d in disputes] == [f"stripe:dispute:{dispute.id}"]
    assert disputes[0].reversal_of.idempotency_key == invoice_paid_key(sub.latest_invoice)
    assert sum(e.amount for e in disputes[0].entries.all() if e.amount > 0) == 3000
    assert Transaction.objects.filter(source=DISPUTE_FEE_SOURCE).count() == 1
    assert _balance(SystemAccount.STRIPE_CLEARING) == 3000 - FEE_3000 - 3000 - DISPUTE_FEE
    assert _balance(SystemAccount.REVENUE_SUBSCRIPTIONS) == 0
    assert _trial_balance_is_zero()


def test_payment_failure_opens_a_dunning_case_and_payment_recovers_it(stripe_fake):
    feed = EventFeed()
    price = make_price(unit_amount=1200)
    customer, declined = make_customer(card="pm_card_chargeCustomerFail")
    sub = subscribe(customer, declined, price)
    assert sub.status == "incomplete"
    feed.process_new()

    case = DunningCase.objects.get(stripe_invoice_id=sub.latest_invoice)
    assert case.status == DunningCase.Status.OPEN
    assert (case.stripe_subscription_id, case.stripe_customer_id) == (sub.id, customer.id)
    assert (case.amount_due, case.currency) == (1200, "usd")
    assert case.attempt_count >= 1
    assert not Transaction.objects.exists()

    good = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Subscription.modify(sub.id, default_payment_method=good.id)
    stripe.Invoice.pay(sub.latest_invoice)
    feed.process_new()

    case.refresh_from_db()
    assert case.status == DunningCase.Status.RECOVERED
    assert case.resolved_at is not None
    assert _balance(SystemAccount.STRIPE_CLEARING) == 1200 - FEE_1200
    state = SubscriptionState.objects.get(stripe_subscription_id=sub.id)
    assert (state.status, state.mrr) == ("active", 1200)
    assert _movements(sub.id) == [("new", 0, 1200)]


def test_cancelling_closes_open_dunning_cases(stripe_fake):
    feed = EventFeed()
    price = make_price(unit_amount=1200)
    customer, declined = make_customer(card="pm_card_chargeCustomerFail")
    sub = subscribe(customer, declined, price)
    feed.process_new()

    stripe.Subscription.cancel(sub.id)
    feed.process_new()

    case = DunningCase.objects.get(stripe_invoice_id=sub.latest_invoice)
    assert case.status == DunningCase.Status.CLOSED
    assert SubscriptionState.objects.get(stripe_subscription_id=sub.id).status == "canceled"
    assert not MRRMovement.objects.exists()  # never had MRR


def test_a_coupon_applied_in_stripe_lowers_mrr_through_its_event(stripe_fake):
    """The event lists the discount by id; its coupon's terms come from dj-stripe's mirror."""
    feed = EventFeed()
    price = make_price(unit_amount=3000)
    customer, pm = make_customer()
    sub = subscribe(customer, pm, price)
    feed.process_new()
    stripe.Coupon.create(id="EFFECTS_THIRD", percent_off=33, duration="forever")

    stripe.Subscription.modify(sub.id, discounts=[{"coupon": "EFFECTS_THIRD"}])
    [event] = [e for e in feed.process_new() if e["type"] == "customer.subscription.updated"]

    assert all(isinstance(d, str) for d in event["data"]["object"]["discounts"])
    state = SubscriptionState.objects.get(stripe_subscription_id=sub.id)
    assert state.mrr == 2010  # 3000 less 33 %
    assert _movements(sub.id) == [("new", 0, 3000), ("contraction", 3000, 2010)]
