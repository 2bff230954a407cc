"""Writes of the analytics app: MRR movements (DESIGN.md §6).

A movement row is written per subscription change (``old_mrr`` / ``new_mrr`` are the
subscription's MRR before and after) but its ``kind`` is decided at the customer level, per
currency: a customer's MRR is the sum of its subscriptions', i.e. the sum of the deltas of all
its movements so far. So:

- ``new``: the customer goes from 0 to > 0 and has never had a movement in this currency;
- ``reactivation``: the customer goes from 0 to > 0 after an earlier churn;
- ``churn``: the customer goes to 0;
- ``expansion`` / ``contraction``: the customer's MRR goes up / down and stays > 0.

Summing ``new_mrr - old_mrr`` per kind therefore gives the customer-level movement amounts, and
net new MRR = Σ delta over all kinds (see ``analytics.selectors.mrr_movements_summary``).
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Sum

from analytics.models import MRRMovement


class MovementError(ValueError):
    """Input that cannot describe an MRR change (negative MRR, naive datetime)."""


def _classify(*, customer_before: int, delta: int, had_movements: bool) -> MRRMovement.Kind:
    customer_after = customer_before + delta
    if customer_before <= 0 < customer_after:
        return MRRMovement.Kind.REACTIVATION if had_movements else MRRMovement.Kind.NEW
    if customer_after <= 0:
        return MRRMovement.Kind.CHURN
    return MRRMovement.Kind.EXPANSION if delta > 0 else MRRMovement.Kind.CONTRACTION


@transaction.atomic
def mrr_movement_record(
    *,
    stripe_customer_id: str,
    stripe_subscription_id: str,
    currency: str,
    old_mrr: int,
    new_mrr: int,
    occurred_at: datetime,
    source_event_id: str,
) -> MRRMovement | None:
    """Record that a subscription's MRR went from ``old_mrr`` to ``new_mrr`` (minor units).

    Returns None when nothing changed. Idempotent on (``source_event_id``,
    ``stripe_subscription_id``) through the table's unique constraint: a replay returns the
    row the first call wrote. The kind is classified against the customer's MRR in
    ``currency`` (the sum of its earlier movements); callers serialise changes of one
    customer (``subscription_state_apply`` locks the customer row) so two concurrent
    changes do not both read the same "before".

    Raises MovementError for negative amounts or a naive ``occurred_at``.
    """
    if old_mrr < 0 or new_mrr < 0:
        raise MovementError("MRR cannot be negative")
    if occurred_at.tzinfo is None:
        raise MovementError("occurred_at must be timezone-aware")
    if old_mrr == new_mrr:
        return None
    currency = currency.lower()
    history = MRRMovement.objects.filter(
        stripe_customer_id=stripe_customer_id, currency=currency
    ).aggregate(total=Sum(F("new_mrr") - F("old_mrr")), rows=Count("pk"))
    kind = _classify(
        customer_before=history["total"] or 0,
        delta=new_mrr - old_mrr,
        had_movements=bool(history["rows"]),
    )
    try:
        with transaction.atomic():  # savepoint: a duplicate undoes only this insert
            return MRRMovement.objects.create(
                stripe_customer_id=stripe_customer_id,
                stripe_subscription_id=stripe_subscription_id,
                kind=kind,
                old_mrr=old_mrr,
                new_mrr=new_mrr,
                currency=currency,
                occurred_at=occurred_at,
                source_event_id=source_event_id,
            )
    except IntegrityError:
        existing = MRRMovement.objects.filter(
            source_event_id=source_event_id, stripe_subscription_id=stripe_subscription_id
        ).first()
        if existing is None:
            raise
        return existing
