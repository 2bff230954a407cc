"""Stripe's fees reach the ledger: processing fees on charges, dispute fees and their return.

End to end on the fake Stripe (card fee 2.9 % + 30, dispute fee 1500; see
``devstripe/balance.py``), events processed through dj-stripe as the webhook
inbox does. What finance needs: ``asset.stripe_clearing`` equals the sum of ``net`` of the
balance transactions Stripe has for the charge.
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
from subscriptions.services.stripe_fees import (
    DISPUTE_FEE_RETURNED_SOURCE,
    DISPUTE_FEE_SOURCE,
    STRIPE_FEE_SOURCE,
    charge_fee_record,
    dispute_fees_record,
)
from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import EventFeed, key, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db

CLEARING = SystemAccount.STRIPE_CLEARING
FEES = SystemAccount.STRIPE_FEES
DISPUTES = SystemAccount.DISPUTE_LOSSES
REVENUE = SystemAccount.REVENUE_SUBSCRIPTIONS
FEE_SOURCES = (STRIPE_FEE_SOURCE, DISPUTE_FEE_SOURCE, DISPUTE_FEE_RETURNED_SOURCE)
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _balance(code: SystemAccount) -> int:
    return account_balance(account=system_account(code)).get("usd", 0)


def _balances() -> dict[SystemAccount, int]:
    return {code: _balance(code) for code in (CLEARING, FEES, DISPUTES, REVENUE)}


def _lines(posting: Transaction) -> dict[str, int]:
    return {e.account.code: e.amount for e in posting.entries.select_related("account")}


def _fee_postings() -> list[tuple[str, str, dict[str, int]]]:
    postings = Transaction.objects.filter(source__in=FEE_SOURCES).order_by("pk")
    return [(p.source, p.idempotency_key, _lines(p)) for p in postings]


def _replay(events: list[dict[str, Any]]) -> None:
    """Process events again: redelivered, then under fresh event ids."""
    for event in events:
        djm.Event.process(event)
    for event in events:
        again = copy.deepcopy(event)
        again["id"] += "_again"
        djm.Event.process(again)


def _charge_net(charge_id: str) -> int:
    """Sum of ``net`` of every balance transaction the fake has for the charge."""
    charge = stripe.Charge.retrieve(charge_id)
    sources = {
        charge_id,
        *(r.id for r in stripe.Refund.list(charge=charge_id).auto_paging_iter()),
        *(d.id for d in stripe.Dispute.list(charge=charge_id).auto_paging_iter()),
    }
    txns = list(stripe.BalanceTransaction.list(limit=100).auto_paging_iter())
    assert charge.balance_transaction in {t.id for t in txns}
    return sum(int(t.net) for t in txns if t.source in sources)


def _subscribe(*, unit_amount: int = 2500, card: str = "pm_card_visa") -> tuple[str, EventFeed]:
    customer, pm = make_customer(card=card)
    sub = subscribe(customer, pm, make_price(unit_amount=unit_amount))
    return invoice_charge_id(sub.latest_invoice), EventFeed()


def test_a_paid_invoice_books_stripes_fee_once(stripe_fake):
    charge_id, feed = _subscribe(unit_amount=2500)
    events = feed.process_new()
    _replay([e for e in events if e["type"] == "charge.succeeded"])

    txn_id = stripe.Charge.retrieve(charge_id).balance_transaction
    # 2.9 % of 2500 = 72.5 -> 73, + 30.
    assert _fee_postings() == [
        (STRIPE_FEE_SOURCE, f"stripe:fee:{txn_id}", {FEES.value: 103, CLEARING.value: -103})
    ]
    [posting] = Transaction.objects.filter(source=STRIPE_FEE_SOURCE)
    created = stripe.BalanceTransaction.retrieve(txn_id).created
    assert posting.posted_at == datetime.fromtimestamp(created, tz=UTC)
    assert _balances() == {CLEARING: 2397, FEES: 103, DISPUTES: 0, REVENUE: -2500}
    assert _balance(CLEARING) == _charge_net(charge_id)
    assert set(trial_balance().values()) == {0}


def test_a_refund_books_no_fee_change(stripe_fake):
    charge_id, feed = _subscribe(unit_amount=2500)
    feed.process_new()
    stripe.Refund.create(charge=charge_id, amount=1000, idempotency_key=key("re"))
    feed.process_new()

    assert [source for source, _, _ in _fee_postings()] == [STRIPE_FEE_SOURCE]
    # Stripe keeps its fee: 2500 - 103 - 1000 left at Stripe.
    assert _balances() == {CLEARING: 1397, FEES: 103, DISPUTES: 0, REVENUE: -1500}
    assert _balance(CLEARING) == _charge_net(charge_id)
    assert set(trial_balance().values()) == {0}


def _dispute_of(charge_id: str) -> dict[str, Any]:
    [dispute] = stripe.Dispute.list(charge=charge_id)["data"]
    return stripe.Dispute.retrieve(dispute.id).last_response.data


def test_a_dispute_books_the_dispute_fee_and_a_won_one_returns_it(stripe_fake):
    charge_id, feed = _subscribe(unit_amount=4000, card="pm_card_createDispute")
    opening = feed.process_new()
    _replay([e for e in opening if e["type"] == "charge.dispute.created"])

    dispute = _dispute_of(charge_id)
    [withdrawal] = dispute["balance_transactions"]
    charge_fee = (
        STRIPE_FEE_SOURCE,
        f"stripe:fee:{stripe.Charge.retrieve(charge_id).balance_transaction}",
    )
    dispute_fee = (DISPUTE_FEE_SOURCE, f"stripe:dispute_fee:{withdrawal['id']}")
    # 2.9 % of 4000 = 116, + 30; the dispute fee is 1500.
    assert _fee_postings() == [
        (*charge_fee, {FEES.value: 146, CLEARING.value: -146}),
        (*dispute_fee, {DISPUTES.value: 1500, CLEARING.value: -1500}),
    ]
    assert _balances() == {CLEARING: -1646, FEES: 146, DISPUTES: 1500, REVENUE: 0}
    assert _balance(CLEARING) == _charge_net(charge_id)

    stripe.Dispute.modify(dispute["id"], evidence={"uncategorized_text": "winning_evidence"})
    closing = feed.process_new()
    _replay([e for e in closing if e["type"] != "charge.dispute.updated"])

    [_, reinstatement] = _dispute_of(charge_id)["balance_transactions"]
    fee_returned = (DISPUTE_FEE_RETURNED_SOURCE, f"stripe:dispute_fee:{reinstatement['id']}")
    assert _fee_postings()[2:] == [(*fee_returned, {CLEARING.value: 1500, DISPUTES.value: -1500})]
    assert _balances() == {CLEARING: 3854, FEES: 146, DISPUTES: 0, REVENUE: -4000}
    assert _balance(CLEARING) == _charge_net(charge_id)
    assert set(trial_balance().values()) == {0}


def test_a_won_dispute_processed_before_its_opening_books_both_fees_once(stripe_fake):
    charge_id, feed = _subscribe(unit_amount=4000, card="pm_card_createDispute")
    opening = feed.new_events()
    for event in opening:
        if event["type"] != "charge.dispute.created":
            djm.Event.process(event)
    stripe.Dispute.modify(
        _dispute_of(charge_id)["id"], evidence={"uncategorized_text": "winning_evidence"}
    )
    closing = feed.new_events()
    for type_ in ("charge.dispute.closed", "charge.dispute.funds_reinstated"):
        [event] = [e for e in closing if e["type"] == type_]
        djm.Event.process(event)  # closed as won first: both fees booked
    [created] = [e for e in opening if e["type"] == "charge.dispute.created"]
    djm.Event.process(created)

    sources = [source for source, _, _ in _fee_postings()]
    assert sources == [STRIPE_FEE_SOURCE, DISPUTE_FEE_SOURCE, DISPUTE_FEE_RETURNED_SOURCE]
    assert _balances() == {CLEARING: 3854, FEES: 146, DISPUTES: 0, REVENUE: -4000}
    assert set(trial_balance().values()) == {0}


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_clearing_equals_the_net_of_the_charges_balance_transactions(stripe_fake, outcome):
    # Paid 2500 (fee 103), disputed (-2500, fee 1500), decided, then 1000 refunded when won.
    charge_id, feed = _subscribe(unit_amount=2500, card="pm_card_createDispute")
    feed.process_new()
    evidence = "winning_evidence" if outcome == "won" else "losing_evidence"
    stripe.Dispute.modify(_dispute_of(charge_id)["id"], evidence={"uncategorized_text": evidence})
    feed.process_new()
    if outcome == "won":
        stripe.Refund.create(charge=charge_id, amount=1000, idempotency_key=key("re"))
        feed.process_new()

    nets = _charge_net(charge_id)
    # won: 2397 - 4000 + 4000 - 1000; lost: 2397 - 4000.
    assert nets == {"won": 1397, "lost": -1603}[outcome]
    assert _balance(CLEARING) == nets
    assert _balance(FEES) == 103
    assert _balance(DISPUTES) == {"won": 0, "lost": 1500}[outcome]
    assert set(trial_balance().values()) == {0}


# --- service edge cases -------------------------------------------------------------------
def test_a_zero_fee_books_nothing(stripe_fake):
    charge = {
        "id": "ch_zero_fee",
        "balance_transaction": {
            "id": "txn_zero_fee",
            "object": "balance_transaction",
            "amount": 2500,
            "fee": 0,
            "net": 2500,
            "currency": "usd",
        },
    }
    assert charge_fee_record(charge=charge, occurred_at=NOW) is None
    # A charge not settled yet has no balance transaction: nothing moved.
    pending = {"id": "ch_pending", "balance_transaction": None}
    assert charge_fee_record(charge=pending, occurred_at=NOW) is None
    assert not Transaction.objects.exists()


def test_the_fee_is_read_from_stripe_when_the_mirror_lacks_the_transaction(stripe_fake):
    charge_id, _feed = _subscribe(unit_amount=1000)  # no events processed: nothing mirrored
    charge = stripe.Charge.retrieve(charge_id).last_response.data
    assert not djm.BalanceTransaction.objects.exists()

    posting = charge_fee_record(charge=charge, occurred_at=NOW)

    assert posting is not None
    assert _lines(posting) == {FEES.value: 59, CLEARING.value: -59}  # 29 + 30
    assert charge_fee_record(charge=charge, occurred_at=NOW) == posting


def test_an_inquiry_books_no_fee_until_it_escalates():
    withdrawal = {
        "id": "txn_escalated",
        "object": "balance_transaction",
        "amount": -1000,
        "fee": 1500,
        "net": -2500,
        "currency": "usd",
        "created": int(NOW.timestamp()),
        "type": "adjustment",
    }
    inquiry = {
        "id": "dp_inquiry",
        "object": "dispute",
        "charge": "ch_inquired",
        "amount": 1000,
        "currency": "usd",
        "status": "warning_needs_response",
        "balance_transactions": [],
    }
    assert dispute_fees_record(dispute=inquiry, occurred_at=NOW) == []
    closed = {**inquiry, "status": "warning_closed"}
    assert dispute_fees_record(dispute=closed, occurred_at=NOW) == []
    assert not Transaction.objects.exists()

    # Escalated: charge.dispute.funds_withdrawn, then created if Stripe sends it too.
    escalated = {**inquiry, "status": "needs_response", "balance_transactions": [withdrawal]}
    [posting] = dispute_fees_record(dispute=escalated, occurred_at=NOW)
    assert dispute_fees_record(dispute=escalated, occurred_at=NOW) == [posting]
    assert posting.idempotency_key == "stripe:dispute_fee:txn_escalated"
    assert _lines(posting) == {DISPUTES.value: 1500, CLEARING.value: -1500}
    assert posting.posted_at == NOW
