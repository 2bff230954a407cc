"""Payouts on the fake: any currency, real balance transactions, a destination dj-stripe syncs."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from djstripe import models as djm

from devstripe.resources import ACCOUNT_ID
from tests.subscriptions.effects_helpers import EventFeed

pytestmark = pytest.mark.django_db


def _txn(txn_id: str) -> dict[str, Any]:
    data: dict[str, Any] = stripe.BalanceTransaction.retrieve(txn_id).last_response.data
    return data


def _summary(txn: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("type", "reporting_category", "amount", "fee", "net", "currency", "status", "source")
    return tuple(txn[k] for k in keys)


def test_a_paid_payout_has_a_real_balance_transaction_and_its_events(stripe_fake):
    feed = EventFeed()
    feed.new_events()
    payout = stripe.Payout.create(amount=12345, currency="GBP", status="paid")

    assert (payout.amount, payout.currency, payout.status) == (12345, "gbp", "paid")
    assert payout.failure_balance_transaction is None
    assert payout.arrival_date == payout.created + 2 * 86400
    assert _summary(_txn(payout.balance_transaction)) == (
        "payout", "payout", -12345, 0, -12345, "gbp", "available", payout.id,
    )  # fmt: skip
    listed = stripe.BalanceTransaction.list(source=payout.id)
    assert [t.id for t in listed.data] == [payout.balance_transaction]
    events = feed.new_events()
    assert [e["type"] for e in events] == ["payout.created", "payout.paid"]
    assert events[0]["data"]["object"]["status"] == "pending"
    assert events[1]["data"]["object"]["currency"] == "gbp"


def test_a_failed_payout_puts_the_money_back(stripe_fake):
    feed = EventFeed()
    feed.new_events()
    payout = stripe.Payout.create(amount=5000, currency="eur", status="failed")

    assert (payout.status, payout.failure_code) == ("failed", "could_not_process")
    assert _summary(_txn(payout.balance_transaction)) == (
        "payout", "payout", -5000, 0, -5000, "eur", "available", payout.id,
    )  # fmt: skip
    assert _summary(_txn(payout.failure_balance_transaction)) == (
        "payout_failure", "payout_reversal", 5000, 0, 5000, "eur", "available", payout.id,
    )  # fmt: skip
    assert [e["type"] for e in feed.new_events()] == ["payout.created", "payout.failed"]


def test_a_pending_payout_can_be_canceled(stripe_fake):
    payout = stripe.Payout.create(amount=700, currency="usd")
    assert payout.status == "pending"

    canceled = stripe.Payout.cancel(payout.id)

    assert canceled.status == "canceled"
    assert _summary(_txn(canceled.failure_balance_transaction)) == (
        "payout_cancel", "payout_reversal", 700, 0, 700, "usd", "available", payout.id,
    )  # fmt: skip
    with pytest.raises(stripe.InvalidRequestError, match="Cannot cancel payout"):
        stripe.Payout.cancel(payout.id)


def test_the_destination_is_the_platforms_bank_account_for_the_currency(stripe_fake):
    first = stripe.Payout.create(amount=100, currency="usd", status="paid")
    second = stripe.Payout.create(amount=200, currency="usd", status="paid")
    other = stripe.Payout.create(amount=300, currency="jpy", status="paid")
    assert first.destination == second.destination != other.destination

    expanded = stripe.Payout.retrieve(first.id, expand=["destination"]).destination
    assert expanded.object == "bank_account"
    assert (expanded.account, expanded.currency, expanded.default_for_currency) == (
        ACCOUNT_ID,
        "usd",
        True,
    )
    served = stripe.Account.retrieve_external_account(ACCOUNT_ID, first.destination)
    assert served.id == first.destination
    listed = stripe.Account.list_external_accounts(ACCOUNT_ID)
    assert {a.currency for a in listed.data} == {"usd", "jpy"}
    with pytest.raises(stripe.InvalidRequestError, match="No such external account"):
        stripe.Account.retrieve_external_account(ACCOUNT_ID, "ba_nobody")


@pytest.mark.parametrize(
    "params",
    [
        {"amount": 0, "currency": "usd"},
        {"amount": 100, "currency": "dollars"},
        {"amount": 100, "currency": "usd", "status": "in_transit"},
        {"amount": 100, "currency": "usd", "destination": "ba_nobody"},
    ],
)
def test_invalid_payouts_are_refused(stripe_fake, params):
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Payout.create(**params)


def test_dj_stripe_syncs_the_payout_its_destination_and_balance_transactions(stripe_fake):
    feed = EventFeed()
    feed.new_events()
    paid = stripe.Payout.create(amount=4200, currency="chf", status="paid")
    failed = stripe.Payout.create(amount=900, currency="chf", status="failed")
    feed.process_new()

    synced = djm.Payout.objects.get(id=paid.id)
    assert (synced.amount, synced.currency, synced.status) == (4200, "chf", "paid")
    assert synced.balance_transaction.amount == -4200
    assert synced.destination.id == paid.destination
    assert synced.destination.account.id == ACCOUNT_ID
    failed_row = djm.Payout.objects.get(id=failed.id)
    assert failed_row.status == "failed"
    assert failed_row.failure_balance_transaction.amount == 900
