"""The revenue metrics of DESIGN.md §6 as report functions (issue 13's contract).

Every function is keyword-only and takes UTC days (``datetime.date``). A period ``start`` ..
``end`` is inclusive: [start 00:00 UTC, end + 1 day 00:00 UTC). "MRR at the start" is the MRR just
before start 00:00; "MRR at the end" / "on D" is the MRR at the end of day D, after all its
changes. Money is int minor units; rates are strings with 4 decimals ("0.0523"), or None where
undefined (a division by zero). Currencies are lowercase ISO codes.

All figures come from the MRR movement rows (``analytics.models.MRRMovement``): a customer's
MRR at a time is the sum of ``new_mrr - old_mrr`` of its movements before that time, and the
active customers are the customers whose MRR is above zero. Completed days are read from the
daily snapshots (``analytics.snapshots``), the days after the last valid one replayed from the
movements; figures that reach today are cached for ``LIVE_CACHE_SECONDS``.
"""

from __future__ import annotations

import calendar
import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Any, cast

from django.core.cache import cache
from django.db import connection
from django.db.models import Sum
from djstripe.models import Subscription

from analytics.models import MRRMovement
from analytics.mrr import MRR_STATUSES
from analytics.snapshots import DayFigures, cohort_changes, daily_history
from ledger.models import Account, Entry
from marketplace.models import UsageChargeLine, UsagePeriodClose
from revenue_site.money import MoneyError, normalize_currency

RATE_PLACES = 4
# Figures that reach today are cached this long (seconds).
LIVE_CACHE_SECONDS = 30
CURRENCIES_CACHE_KEY = "analytics:reports:currencies"
CURRENCIES_CACHE_SECONDS = 300
# A month, for turning a period's churn rate into a monthly one (LTV): 365 / 12 days.
DAYS_PER_MONTH = Fraction(365, 12)


class ReportError(ValueError):
    """Input a report cannot answer; ``field`` names the argument at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# --- helpers ------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [_json(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.as_dict()  # type: ignore[attr-defined]
    return value


class _Report:
    def as_dict(self) -> dict[str, Any]:
        return {
            field.name: _json(getattr(self, field.name))
            for field in dataclasses.fields(self)  # type: ignore[arg-type]
        }


def rate(numerator: int | Fraction, denominator: int | Fraction) -> str | None:
    """``numerator / denominator`` as a string with 4 decimals (half up), None if ÷ 0."""
    if not denominator:
        return None
    value = Fraction(numerator) / Fraction(denominator) * 10**RATE_PLACES
    scaled = _round_half_up(value)
    sign = "-" if scaled < 0 else ""
    whole, part = divmod(abs(scaled), 10**RATE_PLACES)
    return f"{sign}{whole}.{part:0{RATE_PLACES}d}"


def _round_half_up(value: Fraction) -> int:
    return int((value * 2 + 1) // 2) if value >= 0 else -int((-value * 2 + 1) // 2)


def _currency(currency: str) -> str:
    try:
        return normalize_currency(currency)
    except MoneyError as exc:
        raise ReportError("currency", str(exc)) from exc


def _period(start: date, end: date) -> tuple[datetime, datetime]:
    if start > end:
        raise ReportError("start", "start must be on or before end")
    return _day_start(start), _day_start(end + timedelta(days=1))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _next_month(day: date) -> date:
    return _month_end(day) + timedelta(days=1)


def _months(start: date, end: date) -> list[date]:
    """First days of the calendar months overlapping [start, end]."""
    months, month = [], _month_start(start)
    while month <= end:
        months.append(month)
        month = _next_month(month)
    return months


# --- summary ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary(_Report):
    date: date
    currency: str
    mrr: int
    arr: int
    active_customers: int
    arpa: int | None
    usage_run_rate: int


def arpa(mrr: int, customers: int) -> int | None:
    """MRR ÷ active customers, rounded half up to a minor unit; None without customers."""
    return _round_half_up(Fraction(mrr, customers)) if customers else None


def usage_run_rate(*, on: date, currency: str) -> int:
    """The API usage run-rate on ``on``: what the last complete calendar month before ``on``'s
    month was billed for metered API usage (the period close's meter lines, ``source`` blank;
    content royalties and other charge sources are left out), in ``currency``.

    A month is only billed once it is closed (an hour after it ends, see
    ``marketplace.period_close``), so this is a closed, exact figure rather than a projection;
    closes still rating, or with nothing to bill, count 0.
    """
    currency = _currency(currency)
    month = _month_start(_month_start(on) - timedelta(days=1))
    billed = (
        UsageChargeLine.objects.filter(
            source="",
            period_close__currency=currency,
            period_close__period_start=_day_start(month),
            period_close__status__in=[
                UsagePeriodClose.Status.INVOICING,
                UsagePeriodClose.Status.FINALIZED,
                UsagePeriodClose.Status.PAID,
            ],
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )
    return int(billed)


def _live_cached(key: str, until: date, compute: Any) -> Any:
    """``compute()``, cached briefly when the figures reach today (they change as movements
    land); completed days come from snapshots and are not cached."""
    if until < _today():
        return compute()
    key = f"analytics:reports:{key}"
    cached = cache.get(key)
    if cached is None:
        cached = compute()
        cache.set(key, cached, LIVE_CACHE_SECONDS)
    return cached


def _today() -> date:
    return datetime.now(tz=UTC).date()


def summary(*, on: date, currency: str) -> Summary:
    """MRR, ARR (MRR x 12), active customers and ARPA at the end of day ``on``, and the usage
    run-rate (``usage_run_rate``)."""
    currency = _currency(currency)

    def compute() -> Summary:
        last = daily_history(currency=currency, first_day=on, last_day=on)[-1]
        return Summary(
            date=on,
            currency=currency,
            mrr=last.mrr,
            arr=last.mrr * 12,
            active_customers=last.active_customers,
            arpa=arpa(last.mrr, last.active_customers),
            usage_run_rate=usage_run_rate(on=on, currency=currency),
        )

    return cast(Summary, _live_cached(f"summary:{currency}:{on}", on, compute))


# --- movements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Movements(_Report):
    start: date
    end: date
    currency: str
    mrr_start: int
    mrr_end: int
    new: int
    expansion: int
    contraction: int
    churn: int
    reactivation: int
    net_new: int
    customers_start: int
    customers_churned: int
    customer_churn_rate: str | None
    gross_revenue_churn: str | None
    nrr: str | None
    ltv: int | None
    quick_ratio: str | None


def movements_build(
    *,
    start: date,
    end: date,
    currency: str,
    mrr_start: int,
    mrr_end: int,
    customers_start: int,
    customers_end: int,
    totals: dict[str, int],
    customers_churned: int,
) -> Movements:
    """The derived rates of a period from its raw figures (``totals``: |Σ delta| per kind).

    - customer churn rate = customers churned ÷ active customers at the start;
    - gross revenue churn = (churn + contraction) ÷ MRR at the start;
    - NRR = (MRR at the start + expansion - contraction - churn) ÷ MRR at the start;
    - LTV = ARPA at the end ÷ the monthly customer churn rate (the period's rate scaled to a
      month of 365/12 days), None when nobody churned or nobody is active at the end;
    - quick ratio = (new + expansion + reactivation) ÷ (contraction + churn).
    """
    kinds = MRRMovement.Kind
    new, expansion = totals.get(kinds.NEW, 0), totals.get(kinds.EXPANSION, 0)
    contraction, churn = totals.get(kinds.CONTRACTION, 0), totals.get(kinds.CHURN, 0)
    reactivation = totals.get(kinds.REACTIVATION, 0)
    ltv = None
    if customers_churned and customers_start and customers_end:
        days = (end - start).days + 1
        monthly_churn = Fraction(customers_churned, customers_start) * DAYS_PER_MONTH / days
        ltv = _round_half_up(Fraction(mrr_end, customers_end) / monthly_churn)
    return Movements(
        start=start,
        end=end,
        currency=currency,
        mrr_start=mrr_start,
        mrr_end=mrr_end,
        new=new,
        expansion=expansion,
        contraction=contraction,
        churn=churn,
        reactivation=reactivation,
        net_new=new + expansion + reactivation - contraction - churn,
        customers_start=customers_start,
        customers_churned=customers_churned,
        customer_churn_rate=rate(customers_churned, customers_start),
        gross_revenue_churn=rate(churn + contraction, mrr_start),
        nrr=rate(mrr_start + expansion - contraction - churn, mrr_start),
        ltv=ltv,
        quick_ratio=rate(new + expansion + reactivation, contraction + churn),
    )


def _period_movements(
    history: list[DayFigures], start: date, end: date, currency: str
) -> Movements:
    """``Movements`` of [start, end] from ``history`` (the day before start through end)."""
    days = [d for d in history if start <= d.date <= end]
    before = next(d for d in history if d.date == start - timedelta(days=1))
    totals = {kind: sum(getattr(d, kind) for d in days) for kind in MRRMovement.Kind.values}
    return movements_build(
        start=start,
        end=end,
        currency=currency,
        mrr_start=before.mrr,
        mrr_end=days[-1].mrr,
        customers_start=before.active_customers,
        customers_end=days[-1].active_customers,
        totals=totals,
        customers_churned=sum(d.customers_churned for d in days),
    )


def movements(*, start: date, end: date, currency: str) -> Movements:
    """The MRR movements of [start, end] and the rates derived from them (``movements_build``).

    Each kind sums the subscriptions' deltas classified at customer level
    (``analytics.services``), so net new = MRR at the end - MRR at the start.
    ``customers_churned`` counts churn movements (a customer going to 0): a customer who
    churns, comes back and churns again in the period counts twice.
    """
    currency = _currency(currency)
    _period(start, end)

    def compute() -> Movements:
        history = daily_history(currency=currency, first_day=start, last_day=end)
        return _period_movements(history, start, end, currency)

    return cast(Movements, _live_cached(f"movements:{currency}:{start}:{end}", end, compute))


def movements_by_month(*, start: date, end: date, currency: str) -> list[Movements]:
    """``movements`` of each calendar month overlapping [start, end], clipped to it (the
    figures of the whole range read once)."""
    currency = _currency(currency)
    _period(start, end)

    def compute() -> list[Movements]:
        history = daily_history(currency=currency, first_day=start, last_day=end)
        return [
            _period_movements(history, max(month, start), min(_month_end(month), end), currency)
            for month in _months(start, end)
        ]

    return cast(list[Movements], _live_cached(f"by_month:{currency}:{start}:{end}", end, compute))


# --- cohorts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortRow(_Report):
    cohort: str
    customers: int
    mrr: int
    customer_retention: list[str | None]
    revenue_retention: list[str | None]


@dataclass(frozen=True)
class Cohorts(_Report):
    currency: str
    months: list[str]
    rows: list[CohortRow]


def _label(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def cohorts(*, start: date, end: date, currency: str) -> Cohorts:
    """Monthly cohorts by first paid month (the month of the customer's ``new`` movement) for
    the months overlapping [start, end].

    A row's ``customers`` are the cohort's customers and ``mrr`` their MRR at the end of the
    cohort month; index k of ``customer_retention`` is the share of them with MRR > 0 at the end
    of the k-th month after it, of ``revenue_retention`` their MRR then / ``mrr`` (None when
    ``mrr`` is 0). The last month is measured at the end of ``end`` (clipped). Cohorts without
    customers are left out. Read from the cohort changes stored with the daily snapshots
    (``analytics.snapshots.cohort_changes``), the days after the last valid one replayed.
    """
    currency = _currency(currency)
    _period(start, end)
    months = _months(start, end)

    def compute() -> Cohorts:
        changes = cohort_changes(currency=currency, first_month=months[0], last_day=end)
        rows = []
        for i, cohort in enumerate(months):
            size = sum(changes.get((cohort, month), [0, 0, 0])[2] for month in months)
            if not size:
                continue
            mrr, active = 0, 0
            mrr_by_month, active_by_month = [], []
            for month in months[i:]:
                change = changes.get((cohort, month), [0, 0, 0])
                mrr += change[0]
                active += change[1]
                mrr_by_month.append(mrr)
                active_by_month.append(active)
            rows.append(
                CohortRow(
                    cohort=_label(cohort),
                    customers=size,
                    mrr=mrr_by_month[0],
                    customer_retention=[rate(n, size) for n in active_by_month],
                    revenue_retention=[rate(amount, mrr_by_month[0]) for amount in mrr_by_month],
                )
            )
        return Cohorts(currency=currency, months=[_label(m) for m in months], rows=rows)

    return cast(Cohorts, _live_cached(f"cohorts:{currency}:{start}:{end}", end, compute))


# --- trials, currencies -------------------------------------------------------------------


@dataclass(frozen=True)
class TrialConversion(_Report):
    trials_started: int
    converted: int
    rate: str | None


def trial_conversion(*, start: date, end: date) -> TrialConversion:
    """Trials started in [start, end] (subscriptions of the Stripe mirror whose ``trial_start``
    falls in it) and how many of them became paying: their status is now ``active`` or
    ``past_due``, or they have had an MRR movement (a trial counts no MRR, so any movement
    means they were paying once, even if canceled since)."""
    since, until = _period(start, end)
    trials = dict(
        Subscription.objects.filter(
            stripe_data__trial_start__gte=int(since.timestamp()),
            stripe_data__trial_start__lt=int(until.timestamp()),
        ).values_list("id", "stripe_data__status")
    )
    paying = {sub for sub, status in trials.items() if status in MRR_STATUSES}
    paying |= set(
        MRRMovement.objects.filter(stripe_subscription_id__in=list(trials))
        .values_list("stripe_subscription_id", flat=True)
        .distinct()
    )
    return TrialConversion(
        trials_started=len(trials), converted=len(paying), rate=rate(len(paying), len(trials))
    )


# A loose index scan: the smallest currency, then the next one after it, and so on, each one
# probe of an index that leads with the currency (PostgreSQL has no skip scan of its own).
_SKIP_SCAN = """
WITH RECURSIVE c(currency) AS (
    (SELECT currency FROM {table} WHERE {where} ORDER BY currency LIMIT 1)
    UNION ALL
    SELECT (SELECT t.currency FROM {table} t WHERE {t_where} t.currency > c.currency
            ORDER BY t.currency LIMIT 1)
    FROM c WHERE c.currency IS NOT NULL
)
SELECT currency FROM c WHERE currency IS NOT NULL
"""


def _currencies_by_index_skip_scan() -> set[str]:
    found: set[str] = set()
    with connection.cursor() as cursor:
        # Movements: the (currency, occurred_at) index.
        cursor.execute(
            _SKIP_SCAN.format(table=MRRMovement._meta.db_table, where="TRUE", t_where="")
        )
        found.update(row[0] for row in cursor.fetchall())
        # Ledger entries: the (account, currency, posted_at) index, per system account (every
        # posting touches one: Stripe clearing, revenue, payouts in transit, ...).
        accounts = list(Account.objects.filter(payee_id__isnull=True).values_list("pk", flat=True))
        for account_id in accounts:
            cursor.execute(
                _SKIP_SCAN.format(
                    table=Entry._meta.db_table,
                    where="account_id = %s",
                    t_where="t.account_id = %s AND",
                ),
                [account_id, account_id],
            )
            found.update(row[0] for row in cursor.fetchall())
    return found


def currencies() -> list[str]:
    """Currencies that have any MRR movement or ledger entry, sorted.

    Cached for ``CURRENCIES_CACHE_SECONDS`` (a new currency is rare). On PostgreSQL read by
    skipping through indexes (a handful of index probes per currency, whatever the size of the
    tables); elsewhere by DISTINCT.
    """
    cached = cache.get(CURRENCIES_CACHE_KEY)
    if cached is not None:
        return list(cached)
    if connection.vendor == "postgresql":
        found = _currencies_by_index_skip_scan()
    else:
        found = set(MRRMovement.objects.values_list("currency", flat=True).distinct().order_by())
        found |= set(Entry.objects.values_list("currency", flat=True).distinct().order_by())
    result = sorted(found)
    cache.set(CURRENCIES_CACHE_KEY, result, CURRENCIES_CACHE_SECONDS)
    return result
