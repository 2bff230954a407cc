"""Daily MRR figures per currency: computed from the movement rows, stored by the snapshot task
(``analytics.services.mrr_snapshots_compute``) and read back by the reports.

``day_figures`` replays the movements of a run of days on top of the figures of the day before
(a stored snapshot, or one grouped query over the history), keeping each touched customer's MRR
so the active-customer count stays exact. ``daily_history`` gives the reports one figure per day:
stored snapshots up to the last valid one (``valid_snapshot``), the days after it replayed live.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.db.models import F, Min, Q, Sum
from django.db.models.functions import TruncMonth

from analytics.models import MRRCohortChange, MRRMovement, MRRSnapshot, SnapshotCursor

CURSOR_NAME = "mrr"
# Without PostgreSQL's view of open transactions (SQLite in development), a movement created
# this long before the task's run may not have been committed (and so not seen) when it ran.
LATE_MARGIN = timedelta(minutes=10)
# On PostgreSQL the bound is exact but for clocks: ``created_at`` is stamped by the web or worker
# host, the transactions' start by the database server.
CLOCK_ALLOWANCE = timedelta(seconds=30)
KINDS = tuple(MRRMovement.Kind.values)
_DELTA = F("new_mrr") - F("old_mrr")
_NEW = MRRMovement.Kind.NEW
Day = date  # DayFigures has a field named ``date``


def month_of(at: datetime) -> date:
    """The first day of ``at``'s month (UTC)."""
    return at.astimezone(UTC).date().replace(day=1)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass
class DayFigures:
    """A currency's figures for one day: MRR and active customers at its end, its movements."""

    date: date
    mrr: int = 0
    active_customers: int = 0
    new: int = 0
    expansion: int = 0
    contraction: int = 0
    churn: int = 0
    reactivation: int = 0
    customers_churned: int = 0
    # Cohort (first day of its month) -> [MRR change, active customers change, joined].
    cohorts: dict[Day, list[int]] = field(default_factory=dict, repr=False)
    _signed: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_snapshot(cls, row: MRRSnapshot) -> DayFigures:
        return cls(
            date=row.date,
            mrr=row.mrr,
            active_customers=row.active_customers,
            new=row.new,
            expansion=row.expansion,
            contraction=row.contraction,
            churn=row.churn,
            reactivation=row.reactivation,
            customers_churned=row.customers_churned,
        )

    def totals(self) -> dict[str, int]:
        return {kind: getattr(self, kind) for kind in KINDS}


def mrr_and_customers_before(currency: str, before: datetime) -> tuple[int, int]:
    """(MRR, active customers) of ``currency`` just before ``before``, from the whole history
    (two grouped queries; the snapshots exist to avoid this)."""
    prior = MRRMovement.objects.filter(currency=currency, occurred_at__lt=before)
    mrr = prior.aggregate(total=Sum(_DELTA))["total"] or 0
    customers = (
        prior.values("stripe_customer_id")
        .annotate(mrr=Sum(_DELTA))
        .filter(mrr__gt=0)
        .order_by()
        .count()
    )
    return mrr, customers


def day_figures(
    *, currency: str, first_day: date, last_day: date, base: tuple[int, int] | None = None
) -> list[DayFigures]:
    """The figures of every day in [first_day, last_day], replayed from the movement rows.

    ``base`` is (MRR, active customers) at the end of the day before ``first_day`` (a stored
    snapshot); without it they are computed from the whole history. Queries: the base (0 or 2),
    the MRR before ``first_day`` of the customers who move in the window (1), the window's
    movements in time order (1, streamed).
    """
    since, until = day_start(first_day), day_start(last_day + timedelta(days=1))
    mrr, active = base if base is not None else mrr_and_customers_before(currency, since)
    window = MRRMovement.objects.filter(
        currency=currency, occurred_at__gte=since, occurred_at__lt=until
    )
    customer_mrr: dict[str, int] = {}
    customer_cohort: dict[str, date] = {}
    prior = (
        MRRMovement.objects.filter(
            currency=currency,
            occurred_at__lt=since,
            stripe_customer_id__in=window.values("stripe_customer_id"),
        )
        .values("stripe_customer_id")
        .annotate(total=Sum(_DELTA), joined=Min("occurred_at", filter=Q(kind=_NEW)))
        .order_by()
        .values_list("stripe_customer_id", "total", "joined")
    )
    for customer, total, joined in prior:
        customer_mrr[customer] = total or 0
        if joined is not None:
            customer_cohort[customer] = month_of(joined)
    days: list[DayFigures] = []
    day = first_day
    current = DayFigures(date=day)
    rows: Iterable[tuple[str, str, int, int, datetime]] = (
        window.order_by("occurred_at", "pk")
        .values_list("stripe_customer_id", "kind", "old_mrr", "new_mrr", "occurred_at")
        .iterator(chunk_size=5000)
    )

    def close(figures: DayFigures) -> None:
        figures.mrr, figures.active_customers = mrr, active
        for kind, signed in figures._signed.items():
            setattr(figures, kind, abs(signed))
        days.append(figures)

    for customer, kind, old, new, occurred_at in rows:
        moved_on = occurred_at.astimezone(UTC).date()
        while day < moved_on:
            close(current)
            day += timedelta(days=1)
            current = DayFigures(date=day)
        delta = new - old
        before = customer_mrr.get(customer, 0)
        after = before + delta
        customer_mrr[customer] = after
        mrr += delta
        became_active = (after > 0) - (before > 0)
        active += became_active
        current._signed[kind] = current._signed.get(kind, 0) + delta
        cohort = customer_cohort.get(customer)
        if cohort is None and kind == _NEW:
            cohort = customer_cohort[customer] = month_of(occurred_at)
        if cohort is not None:
            change = current.cohorts.setdefault(cohort, [0, 0, 0])
            change[0] += delta
            change[1] += became_active
            change[2] += kind == _NEW
        if kind == MRRMovement.Kind.CHURN:
            current.customers_churned += 1
    while day <= last_day:
        close(current)
        day += timedelta(days=1)
        current = DayFigures(date=day)
    return days


def movements_seen_before(now: datetime) -> datetime:
    """A time such that every movement created before it is visible to a transaction that
    reads the movements from now on: the snapshot task's cursor.

    A movement is stamped (``created_at``) inside the transaction that writes it, so after its
    start; a movement created before the oldest transaction open now (on this database) has
    been committed, or rolled back. So the bound is ``now`` or the start of the oldest other
    open transaction, whichever is earlier, less ``CLOCK_ALLOWANCE``. Without that view
    (SQLite), ``now`` less ``LATE_MARGIN``.

    A fixed margin alone made every movement created in the ten minutes before a run "late"
    to the reports: after a bulk load or ``analytics_rebuild --apply`` they ignored the
    snapshots and replayed the whole history for ten minutes (the dashboard took 45 s instead
    of 0.15 s on the benchmark's 5M movements). Sessions of other database roles are not
    visible in ``pg_stat_activity`` without ``pg_read_all_stats``; movements are written by
    the application's role.
    """
    if connection.vendor != "postgresql":
        return now - LATE_MARGIN
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(xact_start) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND xact_start IS NOT NULL"
        )
        oldest = cursor.fetchone()[0]
    return (now if oldest is None else min(now, oldest)) - CLOCK_ALLOWANCE


def valid_snapshot(currency: str, *, on_or_before: date) -> MRRSnapshot | None:
    """The latest stored snapshot on or before ``on_or_before`` that no late movement has made
    stale: a movement created since the task's last run saw the movements
    (``movements_seen_before``) inside a snapshotted day invalidates that day and the ones
    after it. Two or three queries."""
    cursor = (
        SnapshotCursor.objects.filter(name=CURSOR_NAME)
        .values_list("movements_created_before", flat=True)
        .first()
    )
    bound = on_or_before
    if cursor is not None:
        late = MRRMovement.objects.filter(currency=currency, created_at__gte=cursor).aggregate(
            first=Min("occurred_at")
        )["first"]
        if late is not None:
            bound = min(bound, late.astimezone(UTC).date() - timedelta(days=1))
    return MRRSnapshot.objects.filter(currency=currency, date__lte=bound).order_by("-date").first()


def daily_history(*, currency: str, first_day: date, last_day: date) -> list[DayFigures]:
    """One ``DayFigures`` per day from the day before ``first_day`` through ``last_day``: stored
    snapshots up to the last valid one, the days after it replayed from the movements.

    Days before the first snapshot of a currency have no movements (the task snapshots from
    the first movement's day on), so they read as zero.
    """
    wanted_from = first_day - timedelta(days=1)
    anchor = valid_snapshot(currency, on_or_before=last_day)
    by_day: dict[date, DayFigures] = {}
    if anchor is not None and anchor.date >= wanted_from:
        stored = MRRSnapshot.objects.filter(
            currency=currency, date__gte=wanted_from, date__lte=anchor.date
        )
        by_day = {row.date: DayFigures.from_snapshot(row) for row in stored}
        live_from = anchor.date + timedelta(days=1)
        base: tuple[int, int] | None = (anchor.mrr, anchor.active_customers)
    elif anchor is not None:
        # The snapshot is older than the period: replay from it (the task runs hourly, so
        # this is at most a day or so of movements).
        live_from = anchor.date + timedelta(days=1)
        base = (anchor.mrr, anchor.active_customers)
    else:
        live_from, base = wanted_from, None
    if live_from <= last_day:
        for figures in day_figures(
            currency=currency, first_day=live_from, last_day=last_day, base=base
        ):
            if figures.date >= wanted_from:
                by_day[figures.date] = figures
    history, previous = [], DayFigures(date=wanted_from)
    day = wanted_from
    while day <= last_day:
        figures = by_day.get(day) or DayFigures(
            date=day, mrr=previous.mrr, active_customers=previous.active_customers
        )
        history.append(figures)
        previous = figures
        day += timedelta(days=1)
    return history


def cohort_changes(
    *, currency: str, first_month: date, last_day: date
) -> dict[tuple[date, date], list[int]]:
    """(cohort, month) -> [MRR change, active customers change, customers joined] in that
    month, for the cohorts from ``first_month`` on and the days up to ``last_day``: stored
    rows up to the last valid snapshot (one grouped query), the days after it replayed."""
    anchor = valid_snapshot(currency, on_or_before=last_day)
    changes: dict[tuple[date, date], list[int]] = {}
    if anchor is not None:
        stored = (
            MRRCohortChange.objects.filter(
                currency=currency, cohort__gte=first_month, date__lte=anchor.date
            )
            .annotate(month=TruncMonth("date"))
            .values("cohort", "month")
            .annotate(
                mrr=Sum("mrr_change"), active=Sum("active_change"), joined=Sum("customers_joined")
            )
            .order_by()
        )
        for row in stored:
            month = row["month"]
            month = month.date() if isinstance(month, datetime) else month
            changes[(row["cohort"], month)] = [row["mrr"], row["active"], row["joined"]]
        live_from = anchor.date + timedelta(days=1)
        base: tuple[int, int] | None = (anchor.mrr, anchor.active_customers)
    else:
        # The cohorts' figures do not need the currency's MRR before them: no base query.
        live_from, base = first_month, (0, 0)
    if live_from <= last_day:
        for figures in day_figures(
            currency=currency, first_day=live_from, last_day=last_day, base=base
        ):
            month = figures.date.replace(day=1)
            for cohort, (mrr, active, joined) in figures.cohorts.items():
                if cohort < first_month:
                    continue
                total = changes.setdefault((cohort, month), [0, 0, 0])
                total[0] += mrr
                total[1] += active
                total[2] += joined
    return changes
