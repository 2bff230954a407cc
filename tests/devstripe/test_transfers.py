"""Stripe Connect on the fake: connected accounts and transfers (the payout engine's calls)."""

from __future__ import annotations

import pytest
import stripe

pytestmark = pytest.mark.django_db


def test_a_transfer_to_a_connected_account_is_created_once_per_idempotency_key(stripe_fake):
    account = stripe.Account.create(type="express", country="US", email="a@example.com")
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
