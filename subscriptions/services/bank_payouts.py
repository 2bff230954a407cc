"""Stripe paying our balance out to our bank account (``payout.*`` events).

``asset.stripe_clearing`` tracks the balance Stripe holds for us (charges in; fees, refunds,
disputes and Connect transfers out). A payout moves money from there to ``asset.bank``:

- ``payout.paid``: Dr ``asset.bank`` / Cr ``asset.stripe_clearing`` for the payout's
  ``amount`` in its currency, posted once (key ``stripe:payout:<po id>``) at its
  ``arrival_date`` (the event's time when it has none);
- ``payout.failed``: the bank sent it back, Stripe put it back in our balance. If it was
  booked as paid, that posting is reversed once (key ``stripe:payout.failed:<po id>``);
  otherwise nothing moved on our side and nothing is booked;
- ``payout.created``, ``.updated``, ``.canceled``: nothing (a canceled payout never left).

Between a payout's creation and ``payout.paid`` Stripe's balance already excludes it (its
balance transaction is dated at creation) while our clearing still includes it: the money is
in transit, and clearing exceeds Stripe's balance by the payouts not yet paid.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from djstripe import models as djm

from ledger.chart import SystemAccount
from ledger.models import Transaction
from ledger.services import Line, ledger_post, ledger_reverse, system_account
from revenue_site.stripe_payloads import stripe_id, stripe_time

logger = logging.getLogger(__name__)

PAYOUT_SOURCE = "subscriptions.bank_payout"
PAYOUT_FAILED_SOURCE = "subscriptions.bank_payout_failed"
# Stripe's outcomes after which the money is back in our Stripe balance.
_RETURNED = ("failed", "canceled")


def payout_key(payout_id: str) -> str:
    return f"stripe:payout:{payout_id}"


def payout_failed_key(payout_id: str) -> str:
    return f"stripe:payout.failed:{payout_id}"


def _arrival(payout: Mapping[str, Any], fallback: datetime) -> datetime:
    return stripe_time(payout.get("arrival_date")) or fallback


def _mirrored_status(payout_id: str) -> str | None:
    """The payout's status as dj-stripe last synced it (from Stripe, before our receivers)."""
    data = djm.Payout.objects.filter(id=payout_id).values_list("stripe_data", flat=True).first()
    return data.get("status") if data else None


@transaction.atomic
def payout_paid_record(*, payout: Mapping[str, Any], occurred_at: datetime) -> Transaction | None:
    """Book a paid payout: Dr bank / Cr stripe clearing, its ``amount`` in its currency.

    Posted once (key ``stripe:payout:<po id>``) at the payout's ``arrival_date``
    (``occurred_at`` without one). Returns the posting (the existing one on a replay), or None
    when the amount is not positive. When the payout has failed since (dj-stripe's mirror,
    synced from Stripe before this runs, says ``failed``/``canceled``) it books nothing and
    returns the earlier posting if any: a ``payout.paid`` delivered after its
    ``payout.failed`` must not book what that failure found nothing to reverse.
    """
    payout_id = stripe_id(payout.get("id"))
    amount = int(payout.get("amount") or 0)
    if amount <= 0:
        logger.warning("payout %s has a non-positive amount %s", payout_id, amount)
        return None
    if _mirrored_status(payout_id) in _RETURNED:
        existing = Transaction.objects.filter(
            source=PAYOUT_SOURCE, idempotency_key=payout_key(payout_id)
        ).first()
        return existing  # booked before it failed (the failure reverses it), or nothing
    currency = str(payout["currency"]).lower()
    return ledger_post(
        idempotency_key=payout_key(payout_id),
        source=PAYOUT_SOURCE,
        lines=[
            Line.debit(system_account(SystemAccount.BANK), amount, currency),
            Line.credit(system_account(SystemAccount.STRIPE_CLEARING), amount, currency),
        ],
        memo=f"Stripe payout {payout_id} to the bank",
        posted_at=_arrival(payout, occurred_at),
    )


@transaction.atomic
def payout_failed_record(*, payout: Mapping[str, Any], occurred_at: datetime) -> Transaction | None:
    """Reverse a failed payout's posting if it was booked as paid; else book nothing.

    The reversal (key ``stripe:payout.failed:<po id>``) is posted once, at ``occurred_at``:
    the money is back in our Stripe balance from then on. Returns it (the existing one on a
    replay), or None when the payout was never booked as paid.
    """
    payout_id = stripe_id(payout.get("id"))
    paid = Transaction.objects.filter(
        source=PAYOUT_SOURCE, idempotency_key=payout_key(payout_id)
    ).first()
    if paid is None:
        return None
    return ledger_reverse(
        transaction=paid,
        idempotency_key=payout_failed_key(payout_id),
        source=PAYOUT_FAILED_SOURCE,
        memo=f"Stripe payout {payout_id} failed: {payout.get('failure_code') or 'returned'}",
        posted_at=occurred_at,
    )
