"""Disputes end to end on the fake Stripe: opened, then won (booked back) or lost (stays out).

The fake disputes a charge made with Stripe's test card ``pm_card_createDispute``; evidence
``winning_evidence`` / ``losing_evidence`` and ``Dispute.close`` decide it as Stripe's test
mode does. Events go through dj-stripe's ``Event.process`` (what the webhook inbox ends with).
Stripe's fees are booked too (``subscriptions.services.stripe_fees``): the clearing balances
below include the processing fee on the charge and, while a dispute is open or lost, the
dispute fee (2.9 % + 30 and 1500 on the fake Stripe).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe
from djstripe import models as djm

from ledger.chart import SystemAccount
from ledger.models import Transaction
from ledger.selectors import account_balance, trial_balance
from ledger.services import system_account
from subscriptions.services.invoice_postings import (
    DISPUTE_SOURCE,
    DISPUTE_WON_SOURCE,
    REFUND_SOURCE,
    dispute_closed_record,
    dispute_record,
    dispute_won_record,
)
from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import EventFeed, key, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db

CLEARING = SystemAccount.STRIPE_CLEARING
REVENUE = SystemAccount.REVENUE_SUBSCRIPTIONS
TAX = SystemAccount.SALES_TAX_PAYABLE
FEE_1000 = 59  # 2.9 % of 1000 = 29, + 30
FEE_1500 = 74  # 2.9 % of 1500 = 43.5 -> 44, + 30
FEE_3000 = 117  # 2.9 % of 3000 = 87, + 30
DISPUTE_FEE = 1500  # withdrawn with the disputed amount; returned when the dispute is won
# 2500 + 20 % exclusive tax = 3000 charged, less Stripe's fee on it. Won: the disputed amount
# and the dispute fee come back, the same balances again.
BEFORE_DISPUTE = {CLEARING: 3000 - FEE_3000, REVENUE: -2500, TAX: -500}
# Open or lost: the disputed amount and the dispute fee are withdrawn.
AFTER_DISPUTE = {CLEARING: 3000 - FEE_3000 - 3000 - DISPUTE_FEE, REVENUE: 0, TAX: 0}
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _balances() -> dict[SystemAccount, int]:
    return {
        code: account_balance(account=system_account(code)).get("usd", 0)
        for code in (CLEARING, REVENUE, TAX)
    }


def _lines(posting: Transaction) -> dict[str, int]:
    return {e.account.code: e.amount for e in posting.entries.select_related("account")}


def _process(events: list[dict[str, Any]], *types: str) -> None:
    for event in events:
        if not types or event["type"] in types:
            djm.Event.process(event)


@pytest.fixture
def disputed(stripe_fake):
    """A taxed subscription whose first charge is disputed; the dispute's opening is booked."""
    rate = stripe.TaxRate.create(
        display_name="VAT", percentage="20", inclusive=False, idempotency_key=key("txr")
    )
    customer, pm = make_customer(card="pm_card_createDispute")
    sub = subscribe(customer, pm, make_price(unit_amount=2500), default_tax_rates=[rate.id])
    charge_id = invoice_charge_id(sub.latest_invoice)
    [dispute] = stripe.Dispute.list(charge=charge_id)["data"]
    feed = EventFeed()
    return dispute.id, charge_id, feed


def test_a_won_dispute_books_back_what_its_opening_reversed_once(disputed):
    dispute_id, _charge_id, feed = disputed
    feed.process_new()
    assert _balances() == AFTER_DISPUTE

    stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": "winning_evidence"})
    events = feed.process_new()
    closing = [e for e in events if e["type"] != "charge.dispute.updated"]
    assert [e["type"] for e in closing] == [
        "charge.dispute.funds_reinstated",
        "charge.dispute.closed",
    ]
    _process(closing)  # redelivered
    for event in closing:  # and again under fresh event ids
        replay = copy.deepcopy(event)
        replay["id"] += "_again"
        djm.Event.process(replay)

    assert djm.Dispute.objects.get(id=dispute_id).status == "won"
    [won] = Transaction.objects.filter(source=DISPUTE_WON_SOURCE)
    assert won.idempotency_key == f"stripe:dispute.won:{dispute_id}"
    assert _lines(won) == {CLEARING.value: 3000, REVENUE.value: -2500, TAX.value: -500}
    assert _balances() == BEFORE_DISPUTE
    assert set(trial_balance().values()) == {0}


def test_closed_as_won_before_funds_reinstated_books_back_once(disputed):
    dispute_id, _charge_id, feed = disputed
    feed.process_new()
    stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": "winning_evidence"})
    events = feed.new_events()

    _process(events, "charge.dispute.closed")
    assert _balances() == BEFORE_DISPUTE
    _process(events, "charge.dispute.funds_reinstated", "charge.dispute.updated")

    assert Transaction.objects.filter(source=DISPUTE_WON_SOURCE).count() == 1
    assert _balances() == BEFORE_DISPUTE


def test_won_before_the_opening_event_books_both_once(disputed):
    dispute_id, _charge_id, feed = disputed
    opening = feed.new_events()
    _process([e for e in opening if e["type"] != "charge.dispute.created"])
    stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": "winning_evidence"})

    feed.process_new()  # the won dispute's events overtake its opening
    _process(opening, "charge.dispute.created")

    assert Transaction.objects.filter(source=DISPUTE_SOURCE).count() == 1
    assert Transaction.objects.filter(source=DISPUTE_WON_SOURCE).count() == 1
    assert _balances() == BEFORE_DISPUTE


@pytest.mark.parametrize("how", ["losing_evidence", "accepted"])
def test_a_lost_dispute_books_nothing_more(disputed, how):
    dispute_id, _charge_id, feed = disputed
    feed.process_new()
    reversal = Transaction.objects.get(source=DISPUTE_SOURCE)

    if how == "accepted":
        stripe.Dispute.close(dispute_id)
    else:
        stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": how})
    types = [e["type"] for e in feed.process_new()]

    assert types[-1] == "charge.dispute.closed"
    assert "charge.dispute.funds_reinstated" not in types
    assert djm.Dispute.objects.get(id=dispute_id).status == "lost"
    assert list(Transaction.objects.filter(source=DISPUTE_SOURCE)) == [reversal]
    assert not Transaction.objects.filter(source=DISPUTE_WON_SOURCE).exists()
    assert _balances() == AFTER_DISPUTE


def test_a_refund_after_a_won_dispute_reverses_the_booked_back_revenue(disputed):
    dispute_id, charge_id, feed = disputed
    feed.process_new()
    stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": "winning_evidence"})
    feed.process_new()

    stripe.Refund.create(charge=charge_id, amount=1200, idempotency_key=key("re"))
    feed.process_new()
    [refund] = Transaction.objects.filter(source=REFUND_SOURCE)
    # Nothing is left of the invoice posting: the refund comes out of the booked-back one.
    assert refund.reversal_of.source == DISPUTE_WON_SOURCE
    assert _lines(refund) == {CLEARING.value: -1200, REVENUE.value: 1000, TAX.value: 200}

    stripe.Refund.create(charge=charge_id, idempotency_key=key("re"))  # the other 1800
    feed.process_new()
    # Refunded in full; the dispute fee came back, Stripe's fee on the charge did not.
    assert _balances() == {CLEARING: 3000 - FEE_3000 - 1200 - 1800, REVENUE: 0, TAX: 0}
    assert Transaction.objects.filter(source=REFUND_SOURCE).count() == 2


# --- service edge cases -------------------------------------------------------------------
def _dispute(charge_id: str, amount: int, *, status: str = "won") -> dict[str, Any]:
    return {
        "id": "dp_" + key("edge")[-12:],
        "object": "dispute",
        "charge": charge_id,
        "amount": amount,
        "currency": "usd",
        "status": status,
        "created": int(NOW.timestamp()),
    }


def test_a_won_dispute_on_a_charge_outside_invoices_books_nothing(stripe_fake):
    customer, pm = make_customer()
    intent = stripe.PaymentIntent.create(
        amount=700,
        currency="usd",
        customer=customer.id,
        payment_method=pm.id,
        confirm=True,
        idempotency_key=key("pi"),
    )
    charge_id = stripe.PaymentIntent.retrieve(intent.id).latest_charge
    assert charge_id.startswith("ch_")

    assert dispute_won_record(dispute=_dispute(charge_id, 700), occurred_at=NOW) is None
    assert not Transaction.objects.exists()


def test_a_won_dispute_on_a_charge_refunded_in_full_before_books_nothing(stripe_fake):
    customer, pm = make_customer()
    sub = subscribe(customer, pm, make_price(unit_amount=1500))
    feed = EventFeed()
    feed.process_new()
    charge_id = invoice_charge_id(sub.latest_invoice)
    stripe.Refund.create(charge=charge_id, idempotency_key=key("re"))
    feed.process_new()

    dispute = _dispute(charge_id, 1500)
    assert dispute_won_record(dispute=dispute, occurred_at=NOW) is None
    assert not Transaction.objects.filter(source__in=[DISPUTE_SOURCE, DISPUTE_WON_SOURCE])
    assert _balances() == {CLEARING: 1500 - FEE_1500 - 1500, REVENUE: 0, TAX: 0}


def test_a_partial_dispute_won_books_back_only_its_share(stripe_fake):
    customer, pm = make_customer()
    sub = subscribe(customer, pm, make_price(unit_amount=1000))
    EventFeed().process_new()
    charge_id = invoice_charge_id(sub.latest_invoice)
    dispute = _dispute(charge_id, 400)

    reversal = dispute_record(dispute=dispute, occurred_at=NOW)
    won = dispute_won_record(dispute=dispute, occurred_at=NOW)
    again = dispute_closed_record(dispute=dispute, occurred_at=NOW)

    assert _lines(reversal) == {CLEARING.value: -400, REVENUE.value: 400}
    assert won is not None and again is not None and again.pk == won.pk
    assert _lines(won) == {CLEARING.value: 400, REVENUE.value: -400}
    # Called on the services, not through events: no dispute fee, only the charge's fee.
    assert _balances() == {CLEARING: 1000 - FEE_1000, REVENUE: -1000, TAX: 0}


def test_closing_statuses_other_than_won_post_nothing_new(stripe_fake):
    customer, pm = make_customer()
    sub = subscribe(customer, pm, make_price(unit_amount=1000))
    EventFeed().process_new()
    charge_id = invoice_charge_id(sub.latest_invoice)
    lost = _dispute(charge_id, 1000, status="lost")
    inquiry = _dispute(charge_id, 1000, status="warning_closed")

    assert dispute_closed_record(dispute=inquiry, occurred_at=NOW) is None
    assert not Transaction.objects.filter(source=DISPUTE_SOURCE).exists()
    # A lost dispute whose opening was not booked yet: its reversal is booked, nothing more.
    assert dispute_closed_record(dispute=lost, occurred_at=NOW) is None
    assert Transaction.objects.filter(source=DISPUTE_SOURCE).count() == 1
    assert not Transaction.objects.filter(source=DISPUTE_WON_SOURCE).exists()
    assert _balances() == {CLEARING: 1000 - FEE_1000 - 1000, REVENUE: 0, TAX: 0}


def test_an_inquiry_reverses_nothing_until_it_escalates(stripe_fake):
    # Stripe inquiries (status warning_*) withdraw no funds; if one escalates, the dispute
    # becomes needs_response and charge.dispute.funds_withdrawn books the reversal, once.
    customer, pm = make_customer()
    sub = subscribe(customer, pm, make_price(unit_amount=1000))
    EventFeed().process_new()
    charge_id = invoice_charge_id(sub.latest_invoice)
    inquiry = _dispute(charge_id, 1000, status="warning_needs_response")

    assert dispute_record(dispute=inquiry, occurred_at=NOW) is None
    assert (
        dispute_closed_record(dispute={**inquiry, "status": "warning_closed"}, occurred_at=NOW)
        is None
    )
    assert _balances() == {CLEARING: 1000 - FEE_1000, REVENUE: -1000, TAX: 0}

    escalated = {**inquiry, "status": "needs_response"}
    reversal = dispute_record(dispute=escalated, occurred_at=NOW)  # funds_withdrawn
    replay = dispute_record(dispute=escalated, occurred_at=NOW)  # and created, if sent too

    assert reversal is not None and replay is not None and replay.pk == reversal.pk
    assert _lines(reversal) == {CLEARING.value: -1000, REVENUE.value: 1000}
    # Called on the service, not through events: no dispute fee, only the charge's fee.
    assert _balances() == {CLEARING: 1000 - FEE_1000 - 1000, REVENUE: 0, TAX: 0}
