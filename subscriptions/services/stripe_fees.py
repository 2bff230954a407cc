"""Stripe's fees on our side: processing fees on charges, dispute fees and their return.

Stripe takes its fees out of the balance it holds for us, so ``asset.stripe_clearing`` only
matches that balance when they are booked too. Each fee is read from the balance transaction
that moved the money (its ``fee``, in its ``currency``: what left Stripe's balance) and posted
once, keyed by that balance transaction's id:

- a charge's processing fee: Dr ``expense.stripe_fees`` / Cr ``asset.stripe_clearing``
  (key ``stripe:fee:<txn id>``);
- a dispute's fee, when the funds are withdrawn: Dr ``expense.disputes`` / Cr
  ``asset.stripe_clearing`` (key ``stripe:dispute_fee:<txn id>`` of the withdrawal);
- its return when the merchant wins: Dr ``asset.stripe_clearing`` / Cr ``expense.disputes``
  (key ``stripe:dispute_fee:<txn id>`` of the reinstatement).

Refunds carry no fee (Stripe keeps the processing fee), so they book nothing here. A fee of
0 books nothing. Every charge's fee is booked, inside invoices or not: Stripe took it either way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import stripe
from django.db import transaction
from djstripe import models as djm

from ledger.chart import SystemAccount
from ledger.models import Transaction
from ledger.services import Line, ledger_post, system_account
from revenue_site.stripe_payloads import dispute_is_inquiry, stripe_id, stripe_time
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)

STRIPE_FEE_SOURCE = "subscriptions.stripe_fee"
DISPUTE_FEE_SOURCE = "subscriptions.dispute_fee"
DISPUTE_FEE_RETURNED_SOURCE = "subscriptions.dispute_fee_returned"


def stripe_fee_key(balance_transaction_id: str) -> str:
    return f"stripe:fee:{balance_transaction_id}"


def dispute_fee_key(balance_transaction_id: str) -> str:
    return f"stripe:dispute_fee:{balance_transaction_id}"


def _posted_at(txn: Mapping[str, Any], fallback: datetime) -> datetime:
    return stripe_time(txn.get("created")) or fallback


def _charge_balance_transaction(charge: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The charge's balance transaction: expanded, else dj-stripe's mirror, else from Stripe."""
    value = charge.get("balance_transaction")
    if isinstance(value, Mapping):
        return value
    txn_id = stripe_id(value)
    if not txn_id:
        return None  # not captured (or not settled) yet: no money moved
    mirrored = djm.BalanceTransaction.objects.filter(id=txn_id).values_list(
        "stripe_data", flat=True
    )
    data = mirrored.first()
    if data:
        return data
    return stripe.BalanceTransaction.retrieve(txn_id, api_key=stripe_api_key()).to_dict()


@transaction.atomic
def charge_fee_record(*, charge: Mapping[str, Any], occurred_at: datetime) -> Transaction | None:
    """Book Stripe's processing fee on ``charge``: Dr stripe fees / Cr stripe clearing.

    The fee and its currency come from the charge's balance transaction (the event carries
    only its id: read from dj-stripe's mirror, which synced it with the charge, or from
    Stripe). Posted once per balance transaction (key ``stripe:fee:<txn id>``) at the
    transaction's ``created`` (``occurred_at`` when it has none). Returns the posting (the
    existing one on a replay), or None when the charge has no balance transaction yet or its
    fee is not positive. Raises ``stripe.StripeError`` when Stripe cannot be read (the event
    is retried).
    """
    txn = _charge_balance_transaction(charge)
    if txn is None:
        return None
    fee = int(txn.get("fee") or 0)
    txn_id = stripe_id(txn)
    if fee <= 0:
        if fee < 0:  # Stripe never gives a fee back on a charge; look before booking one
            logger.warning("charge balance transaction %s has a negative fee %s", txn_id, fee)
        return None
    currency = str(txn["currency"]).lower()
    lines = [
        Line.debit(system_account(SystemAccount.STRIPE_FEES), fee, currency),
        Line.credit(system_account(SystemAccount.STRIPE_CLEARING), fee, currency),
    ]
    return ledger_post(
        idempotency_key=stripe_fee_key(txn_id),
        source=STRIPE_FEE_SOURCE,
        lines=lines,
        memo=f"Stripe fee on charge {stripe_id(charge.get('id'))} ({txn_id})",
        posted_at=_posted_at(txn, occurred_at),
    )


@transaction.atomic
def dispute_fees_record(*, dispute: Mapping[str, Any], occurred_at: datetime) -> list[Transaction]:
    """Book the dispute fee of each of the dispute's balance transactions not booked yet.

    A withdrawal's fee (positive) is Stripe's dispute fee: Dr disputes / Cr stripe clearing;
    a reinstatement's fee (negative, the merchant won) is its return: Dr stripe clearing / Cr
    disputes. Each is posted once (key ``stripe:dispute_fee:<txn id>``) at the balance
    transaction's ``created``, whichever of ``charge.dispute.created``,
    ``.funds_withdrawn``, ``.funds_reinstated`` and ``.closed`` brings it first (each carries
    every balance transaction of the dispute so far), so a won dispute processed before its
    opening books both. Inquiries withdraw nothing: returns []. Returns the postings of the
    dispute's fees (existing ones on a replay), oldest first.
    """
    if dispute_is_inquiry(dispute):
        return []
    dispute_id = stripe_id(dispute.get("id"))
    charge_id = stripe_id(dispute.get("charge"))
    clearing = system_account(SystemAccount.STRIPE_CLEARING)
    losses = system_account(SystemAccount.DISPUTE_LOSSES)
    postings = []
    for txn in dispute.get("balance_transactions") or []:
        if not isinstance(txn, Mapping):
            logger.warning("dispute %s: balance transaction %s not expanded", dispute_id, txn)
            continue
        fee = int(txn.get("fee") or 0)
        if fee == 0:
            continue
        txn_id = stripe_id(txn)
        currency = str(txn["currency"]).lower()
        if fee > 0:
            source, what = DISPUTE_FEE_SOURCE, "Dispute fee"
            lines = [Line.debit(losses, fee, currency), Line.credit(clearing, fee, currency)]
        else:
            source, what = DISPUTE_FEE_RETURNED_SOURCE, "Dispute fee returned"
            lines = [Line.debit(clearing, -fee, currency), Line.credit(losses, -fee, currency)]
        postings.append(
            ledger_post(
                idempotency_key=dispute_fee_key(txn_id),
                source=source,
                lines=lines,
                memo=f"{what}: dispute {dispute_id} on charge {charge_id} ({txn_id})",
                posted_at=_posted_at(txn, occurred_at),
            )
        )
    return postings
