"""Disputes, balance, payouts and Connect on the fake, held to the pinned API version.

Every response body the real ``stripe`` client receives while disputes are opened, answered
and closed, balance transactions and the balance read, payouts paid, failed and canceled,
accounts created and read and transfers made, and every event of those types, is checked
(nested objects included) against the installed stripe-python's classes
(``conformance.py``). Objects of other areas met on the way (customers, charges, payment
intents) and the event envelope are left to their own checks.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import stripe

from devstripe.resources import ACCOUNT_ID
from tests.devstripe import conformance
from tests.devstripe.recording import all_events
from tests.stripe_harness import connected_account

pytestmark = pytest.mark.django_db

OUR_TYPES = {
    "dispute",
    "balance_transaction",
    "balance",
    "payout",
    "bank_account",
    "account",
    "transfer",
    "transfer_reversal",
}


def _key() -> str:
    return "conformance-disputes-" + uuid.uuid4().hex


def _disputed_charge(amount: int) -> str:
    customer = stripe.Customer.create(email="disputer@example.com", idempotency_key=_key())
    pm = stripe.PaymentMethod.attach("pm_card_createDispute", customer=customer.id)
    intent = stripe.PaymentIntent.create(
        amount=amount,
        currency="usd",
        customer=customer.id,
        payment_method=pm.id,
        confirm=True,
        idempotency_key=_key(),
    )
    return str(stripe.PaymentIntent.retrieve(intent.id).latest_charge)


def _run_flow() -> None:
    # Disputes: won, lost, accepted, and one answered without submitting.
    outcomes = []
    for amount, evidence in ((4200, "winning_evidence"), (3100, "losing_evidence")):
        charge = _disputed_charge(amount)
        [dispute] = stripe.Dispute.list(charge=charge).data
        stripe.Dispute.modify(
            dispute.id, evidence={"uncategorized_text": evidence}, metadata={"case": evidence}
        )
        outcomes.append(stripe.Dispute.retrieve(dispute.id).status)
    accepted = stripe.Dispute.list(charge=_disputed_charge(2000)).data[0]
    stripe.Dispute.close(accepted.id)
    draft = stripe.Dispute.list(charge=_disputed_charge(1000)).data[0]
    stripe.Dispute.modify(draft.id, evidence={"customer_name": "Jane"}, submit=False)
    stripe.Dispute.list(limit=10)
    assert outcomes == ["won", "lost"]

    # Payouts: paid, failed, canceled; the destination and the platform's external accounts.
    paid = stripe.Payout.create(amount=1000, currency="usd", status="paid", idempotency_key=_key())
    stripe.Payout.create(amount=700, currency="eur", status="failed", idempotency_key=_key())
    pending = stripe.Payout.create(amount=500, currency="usd", idempotency_key=_key())
    stripe.Payout.cancel(pending.id)
    stripe.Payout.retrieve(paid.id, expand=["destination", "balance_transaction"])
    stripe.Payout.list(limit=10)
    stripe.Account.list_external_accounts(ACCOUNT_ID)
    stripe.Account.retrieve_external_account(ACCOUNT_ID, str(paid.destination))

    # Balance transactions (charges, disputes, payouts) and the balance.
    listed = stripe.BalanceTransaction.list(limit=100)
    stripe.BalanceTransaction.retrieve(listed.data[0].id)
    stripe.BalanceTransaction.list(source=paid.id)
    stripe.Balance.retrieve()

    # Connect: the platform account, an Express account, a transfer and a reversal of it.
    stripe.Account.retrieve()
    stripe.Account.retrieve(ACCOUNT_ID)
    account = connected_account(email="seller@example.com")
    stripe.Account.retrieve(account.id)
    stripe.Account.list_external_accounts(account.id)
    transfer = stripe.Transfer.create(
        amount=300,
        currency="usd",
        destination=account.id,
        metadata={"payout": "1"},
        transfer_group="batch-1",
        idempotency_key=_key(),
    )
    stripe.Transfer.create_reversal(transfer.id, amount=100, idempotency_key=_key())
    stripe.Transfer.retrieve(transfer.id)
    stripe.Transfer.list(destination=account.id)
    stripe.Transfer.list_reversals(transfer.id)
    stripe.Account.list(limit=10)


def _ours(body: Any) -> list[dict[str, Any]]:
    """The objects of our types in a response body (a list page's items, one by one)."""
    if not isinstance(body, dict):
        return []
    if body.get("object") in conformance._CONTAINERS:
        return [item for item in body.get("data") or [] if item.get("object") in OUR_TYPES]
    return [body] if body.get("object") in OUR_TYPES else []


def test_disputes_balance_payouts_and_connect_conform(recorder):
    _run_flow()
    events = all_events()

    bodies = [body for _m, _u, status, body in recorder.bodies if status < 400]
    objects = [obj for body in bodies for obj in _ours(body)]
    carried = [obj for e in events for obj in _ours(e["data"]["object"])]
    found = conformance.all_violations([*objects, *carried])
    report = {kind: sorted(set(problems)) for kind, problems in found.items()}
    assert report == {}, json.dumps(report, indent=1)

    kinds = {o["object"] for o in objects}
    assert kinds == OUR_TYPES, kinds
    event_kinds = {(e["type"], e["data"]["object"]["object"]) for e in events}
    assert {
        ("charge.dispute.created", "dispute"),
        ("charge.dispute.updated", "dispute"),
        ("charge.dispute.funds_reinstated", "dispute"),
        ("charge.dispute.closed", "dispute"),
        ("payout.created", "payout"),
        ("payout.paid", "payout"),
        ("payout.failed", "payout"),
        ("payout.canceled", "payout"),
        ("balance.available", "balance"),
        ("transfer.created", "transfer"),
        ("transfer.reversed", "transfer"),
    } <= event_kinds, event_kinds
