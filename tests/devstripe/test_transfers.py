"""Stripe Connect on the fake: connected accounts and transfers (the payout engine's calls)."""

from __future__ import annotations

import pytest
import stripe
from djstripe import models as djm

from devstripe.resources import ACCOUNT_ID
from tests.stripe_harness import connect_onboard, connected_account
from tests.subscriptions.effects_helpers import EventFeed

pytestmark = pytest.mark.django_db


def test_a_transfer_to_a_connected_account_is_created_once_per_idempotency_key(stripe_fake):
    account = connected_account(email="a@example.com")
    assert account.id.startswith("acct_")

    first = stripe.Transfer.create(
        amount=1234, currency="usd", destination=account.id, idempotency_key="payout-1"
    )
    replay = stripe.Transfer.create(
        amount=1234, currency="usd", destination=account.id, idempotency_key="payout-1"
    )

    assert first.id == replay.id
    assert (first.amount, first.currency, first.destination) == (1234, "usd", account.id)
    listed = stripe.Transfer.list(destination=account.id)
    assert [t.id for t in listed.data] == [first.id]
    assert stripe.Transfer.retrieve(first.id).amount == 1234


def test_a_transfer_to_an_unknown_destination_is_refused(stripe_fake):
    with pytest.raises(stripe.InvalidRequestError, match="No such destination"):
        stripe.Transfer.create(amount=100, currency="usd", destination="acct_nobody")
    with pytest.raises(stripe.InvalidRequestError):
        account = stripe.Account.create(type="express")
        stripe.Transfer.create(amount=0, currency="usd", destination=account.id)


def test_a_transfer_can_be_reversed_and_dj_stripe_syncs_both(stripe_fake):
    feed = EventFeed()
    account = connected_account()
    feed.new_events()
    transfer = stripe.Transfer.create(amount=1000, currency="usd", destination=account.id)
    txn = stripe.BalanceTransaction.retrieve(transfer.balance_transaction)
    assert (txn.type, txn.amount, txn.fee, txn.source) == ("transfer", -1000, 0, transfer.id)

    partial = stripe.Transfer.create_reversal(transfer.id, amount=400)
    assert (partial.amount, partial.transfer) == (400, transfer.id)
    back = stripe.BalanceTransaction.retrieve(partial.balance_transaction)
    assert (back.type, back.amount, back.source) == ("transfer_refund", 400, partial.id)
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Transfer.create_reversal(transfer.id, amount=601)
    rest = stripe.Transfer.create_reversal(transfer.id)

    reversed_ = stripe.Transfer.retrieve(transfer.id)
    assert (reversed_.amount_reversed, reversed_.reversed) == (1000, True)
    assert [r.id for r in reversed_.reversals.data] == [rest.id, partial.id]
    assert [r.id for r in stripe.Transfer.list_reversals(transfer.id).data] == [rest.id, partial.id]
    events = feed.process_new()
    assert [e["type"] for e in events] == [
        "transfer.created",
        "transfer.reversed",
        "transfer.reversed",
    ]

    synced = djm.Transfer.objects.get(id=transfer.id)
    assert (synced.amount, synced.amount_reversed, synced.reversed) == (1000, 1000, True)
    assert set(djm.TransferReversal.objects.values_list("id", flat=True)) == {partial.id, rest.id}


def test_accounts_are_read_back_and_the_platform_is_no_destination(stripe_fake):
    account = stripe.Account.create(type="express", country="DE", email="s@example.com")
    again = stripe.Account.retrieve(account.id)
    assert (again.type, again.country, again.default_currency) == ("express", "DE", "eur")
    assert again.controller.type == "application"
    assert [a.id for a in stripe.Account.list().data] == [account.id]
    platform = stripe.Account.retrieve()
    assert (platform.id, platform.type) == (ACCOUNT_ID, "standard")
    with pytest.raises(stripe.InvalidRequestError, match="No such destination"):
        stripe.Transfer.create(amount=100, currency="usd", destination=ACCOUNT_ID)
    with pytest.raises(stripe.InvalidRequestError, match="No such account"):
        stripe.Account.retrieve("acct_nobody")


def test_a_transfer_to_an_account_without_an_active_transfers_capability_is_refused(stripe_fake):
    account = connected_account(onboarded=False)
    assert stripe.Account.retrieve(account.id).capabilities.transfers == "inactive"

    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Transfer.create(
            amount=500, currency="usd", destination=account.id, idempotency_key="refused-1"
        )

    # As Stripe answers: 400, invalid_request_error, its code, message and doc_url, no param.
    assert refused.value.http_status == 400
    error = refused.value.error
    assert (error.type, error.code, error.param) == (
        "invalid_request_error",
        "insufficient_capabilities_for_transfer",
        None,
    )
    assert error.message == (
        "Your destination account needs to have at least one of the following capabilities "
        "enabled: transfers, crypto_transfers, legacy_payments"
    )
    assert (
        error.doc_url
        == "https://stripe.com/docs/error-codes/insufficient-capabilities-for-transfer"
    )
    assert stripe.Transfer.list(destination=account.id).data == []

    # Onboarded, the account takes transfers; restricted again, it refuses them again.
    connect_onboard(account.id)
    assert stripe.Transfer.create(amount=500, currency="usd", destination=account.id).amount == 500
    connect_onboard(account.id, payouts_enabled=False)
    assert stripe.Account.retrieve(account.id).capabilities.transfers == "inactive"
    with pytest.raises(stripe.InvalidRequestError, match="capabilities enabled: transfers"):
        stripe.Transfer.create(amount=500, currency="usd", destination=account.id)
    assert len(stripe.Transfer.list(destination=account.id).data) == 1
