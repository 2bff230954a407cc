"""Stripe's payouts to our bank reach the ledger: Dr bank / Cr stripe clearing.

End to end on the fake Stripe (whose fake-only ``status`` creation parameter decides a payout's
outcome at once), events processed through dj-stripe as the webhook inbox does.
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
from subscriptions.services.bank_payouts import (
    PAYOUT_FAILED_SOURCE,
    PAYOUT_SOURCE,
    payout_failed_record,
    payout_paid_record,
)
from tests.stripe_harness import connected_account
from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import EventFeed, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db

BANK = SystemAccount.BANK
CLEARING = SystemAccount.STRIPE_CLEARING
PAYOUT_SOURCES = (PAYOUT_SOURCE, PAYOUT_FAILED_SOURCE)


def _balance(code: SystemAccount, currency: str = "usd") -> int:
    return account_balance(account=system_account(code)).get(currency, 0)


def _lines(posting: Transaction) -> dict[str, tuple[int, str]]:
    return {
        e.account.code: (e.amount, e.currency) for e in posting.entries.select_related("account")
    }


def _payout_postings() -> list[tuple[str, str, dict[str, tuple[int, str]]]]:
    postings = Transaction.objects.filter(source__in=PAYOUT_SOURCES).order_by("pk")
    return [(p.source, p.idempotency_key, _lines(p)) for p in postings]


def _replay(events: list[dict[str, Any]]) -> None:
    """Process events again: redelivered, then under fresh event ids."""
    for event in events:
        djm.Event.process(event)
    for event in events:
        again = copy.deepcopy(event)
        again["id"] += "_again"
        djm.Event.process(again)


def _pay_out(amount: int, currency: str, status: str) -> tuple[Any, list[dict[str, Any]]]:
    feed = EventFeed()
    feed.new_events()
    payout = stripe.Payout.create(amount=amount, currency=currency, status=status)
    return payout, feed.process_new()


def test_a_paid_payout_books_bank_against_clearing_once(stripe_fake):
    payout, events = _pay_out(50000, "usd", "paid")
    assert [e["type"] for e in events] == ["payout.created", "payout.paid"]
    _replay(events)

    assert _payout_postings() == [
        (
            PAYOUT_SOURCE,
            f"stripe:payout:{payout.id}",
            {BANK.value: (50000, "usd"), CLEARING.value: (-50000, "usd")},
        )
    ]
    [posting] = Transaction.objects.filter(source=PAYOUT_SOURCE)
    assert posting.posted_at == datetime.fromtimestamp(payout.arrival_date, tz=UTC)
    assert (_balance(BANK), _balance(CLEARING)) == (50000, -50000)
    assert set(trial_balance().values()) == {0}


def test_a_failed_payout_books_nothing(stripe_fake):
    _payout, events = _pay_out(50000, "usd", "failed")
    assert [e["type"] for e in events] == ["payout.created", "payout.failed"]
    _replay(events)

    assert _payout_postings() == []
    assert (_balance(BANK), _balance(CLEARING)) == (0, 0)


def test_a_payout_that_fails_after_being_paid_is_reversed_once(stripe_fake):
    # The fake decides the outcome at creation, so a paid payout never fails there: its
    # payout.failed is the paid payload as Stripe would send it a few days later.
    payout, events = _pay_out(30000, "usd", "paid")
    [paid_event] = [e for e in events if e["type"] == "payout.paid"]
    failed = {
        **paid_event["data"]["object"],
        "status": "failed",
        "failure_code": "account_closed",
    }
    failed_at = datetime(2026, 3, 5, tzinfo=UTC)

    reversal = payout_failed_record(payout=failed, occurred_at=failed_at)
    assert payout_failed_record(payout=failed, occurred_at=failed_at) == reversal
    _replay([paid_event])  # a redelivered payout.paid does not book it again

    assert reversal is not None
    assert reversal.posted_at == failed_at
    assert _payout_postings() == [
        (
            PAYOUT_SOURCE,
            f"stripe:payout:{payout.id}",
            {BANK.value: (30000, "usd"), CLEARING.value: (-30000, "usd")},
        ),
        (
            PAYOUT_FAILED_SOURCE,
            f"stripe:payout.failed:{payout.id}",
            {BANK.value: (-30000, "usd"), CLEARING.value: (30000, "usd")},
        ),
    ]
    assert (_balance(BANK), _balance(CLEARING)) == (0, 0)
    assert set(trial_balance().values()) == {0}


def test_a_payout_paid_after_its_failure_was_processed_books_nothing(stripe_fake):
    # Delivered out of order: dj-stripe syncs the failed payout before payout.paid runs.
    _payout, events = _pay_out(8000, "usd", "failed")
    [failed_event] = [e for e in events if e["type"] == "payout.failed"]
    paid_payload = {**failed_event["data"]["object"], "status": "paid"}

    assert payout_paid_record(payout=paid_payload, occurred_at=datetime.now(tz=UTC)) is None
    assert _payout_postings() == []


def test_a_payout_in_another_currency_is_booked_in_it(stripe_fake):
    payout, events = _pay_out(123456, "jpy", "paid")
    _replay(events)

    assert _payout_postings() == [
        (
            PAYOUT_SOURCE,
            f"stripe:payout:{payout.id}",
            {BANK.value: (123456, "jpy"), CLEARING.value: (-123456, "jpy")},
        )
    ]
    assert (_balance(BANK, "jpy"), _balance(CLEARING, "jpy")) == (123456, -123456)
    assert (_balance(BANK), _balance(CLEARING)) == (0, 0)
    assert set(trial_balance().values()) == {0}


def test_created_and_canceled_payouts_book_nothing(stripe_fake):
    feed = EventFeed()
    feed.new_events()
    payout = stripe.Payout.create(amount=2000, currency="usd")
    stripe.Payout.cancel(payout.id)
    events = feed.process_new()

    assert [e["type"] for e in events] == ["payout.created", "payout.canceled"]
    assert _payout_postings() == []


def test_paying_out_a_charges_net_empties_clearing_into_the_bank(stripe_fake):
    customer, pm = make_customer()
    sub = subscribe(customer, pm, make_price(unit_amount=2500))
    feed = EventFeed()
    feed.process_new()
    charge = stripe.Charge.retrieve(invoice_charge_id(sub.latest_invoice))
    net = stripe.BalanceTransaction.retrieve(charge.balance_transaction).net
    assert net == 2397  # 2500 - (2.9 % of 2500 = 73, + 30)
    assert _balance(CLEARING) == net

    stripe.Payout.create(amount=net, currency="usd", status="paid")
    feed.process_new()

    assert (_balance(CLEARING), _balance(BANK)) == (0, 2397)
    assert set(trial_balance().values()) == {0}


def test_a_connected_accounts_payout_through_the_connect_endpoint_books_nothing(stripe_fake):
    # The Connect endpoint sends connected accounts' payouts too (their own balance to their
    # bank): the event names the account, and it is not the platform's money.
    seller = connected_account()
    feed = EventFeed()
    feed.new_events()
    stripe.Payout.create(amount=50000, currency="usd", status="failed")
    stripe.Payout.create(amount=40000, currency="usd", status="paid")
    for event in feed.new_events():
        connected = copy.deepcopy(event)
        connected["id"] += "_connected"
        connected["account"] = seller.id
        djm.Event.process(connected)

    assert _payout_postings() == []
    assert (_balance(BANK), _balance(CLEARING)) == (0, 0)
