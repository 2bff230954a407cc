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

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Min, Sum
from django.utils import timezone

from analytics.models import MRRCohortChange, MRRMovement, MRRSnapshot, SnapshotCursor
from analytics.snapshots import CURSOR_NAME, day_figures, movements_seen_before


class MovementError(ValueError):
    """Input that cannot describe an MRR change (negative MRR, naive datetime)."""


def movement_kind(*, customer_before: int, delta: int, had_movements: bool) -> MRRMovement.Kind:
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
    kind = movement_kind(
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


@dataclass(frozen=True)
class SnapshotRun:
    """What a snapshot run recomputed: per currency, the first and last day written."""

    days: dict[str, tuple[date, date]]


@transaction.atomic
def mrr_snapshots_compute(
    *, now: datetime | None = None, max_days: int | None = None
) -> SnapshotRun:
    """Store the daily MRR snapshot of every completed UTC day not yet stored, per currency, and
    recompute the days that movements created since the last run (late webhooks, a rebuild)
    landed in, from the earliest of them on.

    ``max_days`` bounds the days written per currency (the beat task's runs must end within
    Celery's time limit); the rest follow in the next runs, since a run always carries on
    from the last stored day. Meanwhile the reports replay the days not yet stored.

    One run at a time: the cursor row is locked. The cursor then records the time before which
    every movement was visible to this run (``movements_seen_before``: ``now``, or the start of
    a transaction still open then); movements created from it on are looked at again next time.
    """
    now = now or timezone.now()
    yesterday = now.astimezone(UTC).date() - timedelta(days=1)
    cursor, _ = SnapshotCursor.objects.select_for_update().get_or_create(name=CURSOR_NAME)
    # Before this run reads any movement: what it will see is at least what was committed then.
    seen_before = movements_seen_before(now)
    late_since = cursor.movements_created_before
    if late_since is None:
        currencies = set(MRRMovement.objects.values_list("currency", flat=True).distinct())
    else:
        currencies = set(
            MRRSnapshot.objects.values_list("currency", flat=True).distinct().order_by()
        ) | set(
            MRRMovement.objects.filter(created_at__gte=late_since)
            .values_list("currency", flat=True)
            .distinct()
            .order_by()
        )
    written: dict[str, tuple[date, date]] = {}
    for currency in sorted(currencies):
        movements = MRRMovement.objects.filter(currency=currency)
        last = (
            MRRSnapshot.objects.filter(currency=currency)
            .order_by("-date")
            .values_list("date", flat=True)
            .first()
        )
        if last is not None:
            from_day = last + timedelta(days=1)
        else:
            first = movements.aggregate(first=Min("occurred_at"))["first"]
            if first is None:
                continue
            from_day = first.astimezone(UTC).date()
        if late_since is not None:
            late = movements.filter(created_at__gte=late_since).aggregate(first=Min("occurred_at"))[
                "first"
            ]
            if late is not None:
                from_day = min(from_day, late.astimezone(UTC).date())
        if from_day > yesterday:
            continue
        last_day = yesterday
        if max_days is not None:
            last_day = min(last_day, from_day + timedelta(days=max_days - 1))
        written[currency] = (from_day, last_day)
        _snapshots_write(currency=currency, first_day=from_day, last_day=last_day)
    cursor.movements_created_before = seen_before
    cursor.save(update_fields=["movements_created_before"])
    return SnapshotRun(days=written)


def _snapshots_write(*, currency: str, first_day: date, last_day: date) -> None:
    """Replace the snapshots of [first_day, last_day] of ``currency`` by fresh ones (the caller
    holds the cursor lock, so no other run writes them meanwhile)."""
    base_row = MRRSnapshot.objects.filter(
        currency=currency, date=first_day - timedelta(days=1)
    ).first()
    base = (base_row.mrr, base_row.active_customers) if base_row is not None else None
    figures = day_figures(currency=currency, first_day=first_day, last_day=last_day, base=base)
    MRRSnapshot.objects.filter(currency=currency, date__gte=first_day).delete()
    MRRCohortChange.objects.filter(currency=currency, date__gte=first_day).delete()
    MRRCohortChange.objects.bulk_create(
        [
            MRRCohortChange(
                currency=currency,
                date=day.date,
                cohort=cohort,
                mrr_change=mrr,
                active_change=active,
                customers_joined=joined,
            )
            for day in figures
            for cohort, (mrr, active, joined) in sorted(day.cohorts.items())
        ],
        batch_size=2000,
    )
    MRRSnapshot.objects.bulk_create(
        [
            MRRSnapshot(
                date=day.date,
                currency=currency,
                mrr=day.mrr,
                active_customers=day.active_customers,
                new=day.new,
                expansion=day.expansion,
                contraction=day.contraction,
                churn=day.churn,
                reactivation=day.reactivation,
                customers_churned=day.customers_churned,
            )
            for day in figures
        ],
        batch_size=2000,
    )
