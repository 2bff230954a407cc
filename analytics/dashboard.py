"""The revenue dashboard: the staff console's home (/admin/) for staff who may view analytics.

`StaffConsoleSite.index` hands the request here when the user has DASHBOARD_PERMISSION; the
others get the plain index. Everything here is presentation over the analytics functions
(`analytics.reports`, `analytics.revenue`, `analytics.queues`, `analytics.leaders`): it
parses the picker, reads the figures (cached for CACHE_SECONDS, so a refresh storm reads the
database once), and turns them into tiles, chart data, tables and their CSV exports
(`?export=<table>`, the same numbers the API returns, under the API's field names).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from analytics import leaders, queues
from revenue_site.errors import error_body
from revenue_site.money import format_money, from_minor

DASHBOARD_PERMISSION = "analytics.view_mrrmovement"
CACHE_PREFIX = "analytics:dashboard"
CACHE_SECONDS = 60
# Figures about days before today (the previous period, closed months) change only when a late
# event lands or history is rebuilt: kept longer, so an expired minute recomputes only today's.
CLOSED_CACHE_SECONDS = 900
DEFAULT_DAYS = 30
MAX_DAYS = 731
CHART_MONTHS = 12  # the movements chart and the cohorts cover at least this many months
TOP_LIMIT = 10


# --- the picker -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period of the same length that ends the day before this one starts."""
        end = self.start - timedelta(days=1)
        return Period(start=end - timedelta(days=self.days - 1), end=end)

    def chart_window(self) -> Period:
        """The months the movements chart and the cohorts show: the picked period, widened to
        the CHART_MONTHS calendar months that end with the end's month."""
        month = self.end.replace(day=1)
        for _ in range(CHART_MONTHS - 1):
            month = (month - timedelta(days=1)).replace(day=1)
        return Period(start=min(self.start, month), end=self.end)


class DashboardForm(forms.Form):
    start = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label="To (inclusive)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    currency = forms.ChoiceField(label="Currency", required=False, choices=())

    def __init__(self, *args: Any, currencies: Sequence[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["currency"].choices = [(c, c.upper()) for c in currencies]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        today = timezone.now().date()
        end = data.get("end") or today
        start = data.get("start") or end - timedelta(days=DEFAULT_DAYS - 1)
        if "start" in self.errors or "end" in self.errors:
            return data
        if end == date.max:
            self.add_error("end", "Pick an earlier date.")
        elif end < start:
            self.add_error("end", "The end is before the start.")
        elif (end - start).days + 1 > MAX_DAYS:
            self.add_error("start", f"At most {MAX_DAYS} days.")
        data["start"], data["end"] = start, end
        return data


# --- reading the figures (cached) -------------------------------------------------------------


def _cached(
    name: str, compute: Callable[[], Any], *, seconds: int = CACHE_SECONDS, **key: Any
) -> Any:
    """``compute()``, cached for ``seconds`` under ``name`` and the arguments."""
    cache_key = ":".join([CACHE_PREFIX, name, *(f"{k}={key[k]}" for k in sorted(key))])
    value = cache.get(cache_key)
    if value is None:
        value = compute()
        cache.set(cache_key, value, seconds)
    return value


def _seconds(last_day: date) -> int:
    """How long figures that end with ``last_day`` may be cached."""
    return CLOSED_CACHE_SECONDS if last_day < timezone.now().date() else CACHE_SECONDS


def _reports() -> Any:
    from analytics import reports

    return reports


def _revenue() -> Any:
    from analytics import revenue

    return revenue


def currencies() -> list[str]:
    """The currencies the picker offers (those with any MRR movement or ledger entry)."""
    try:
        return list(_cached("currencies", lambda: list(_reports().currencies())))
    except (ImportError, AttributeError):
        return []


def most_common_currency(*, options: Sequence[str], on: date) -> str | None:
    """The currency with the most active customers on ``on`` (then the most MRR)."""
    if not options:
        return None

    def weight(currency: str) -> tuple[int, int]:
        summary = summary_on(on=on, currency=currency)
        return summary.active_customers, summary.mrr

    return max(sorted(options), key=weight)


def summary_on(*, on: date, currency: str) -> Any:
    return _cached(
        "summary",
        lambda: _reports().summary(on=on, currency=currency),
        seconds=_seconds(on),
        on=on,
        currency=currency,
    )


def movements_of(period: Period, *, currency: str) -> Any:
    return _cached(
        "movements",
        lambda: _reports().movements(start=period.start, end=period.end, currency=currency),
        seconds=_seconds(period.end),
        start=period.start,
        end=period.end,
        currency=currency,
    )


def movements_monthly(period: Period, *, currency: str) -> list[Any]:
    """``reports.movements_by_month`` over ``period``, read month by month (it is
    ``reports.movements`` of each calendar month clipped to the period) so that each month is
    cached on its own: the closed ones for CLOSED_CACHE_SECONDS."""
    months = []
    month = period.start.replace(day=1)
    while month <= period.end:
        following = (month + timedelta(days=32)).replace(day=1)
        clipped = Period(
            start=max(month, period.start), end=min(following - timedelta(days=1), period.end)
        )
        months.append(movements_of(clipped, currency=currency))
        month = following
    return months


def trial_conversion_of(period: Period) -> Any:
    """Trials started in the period and how many became paying (every currency)."""
    return _cached(
        "trial_conversion",
        lambda: _reports().trial_conversion(start=period.start, end=period.end),
        start=period.start,
        end=period.end,
    )


def affiliate_roi_of(period: Period, *, currency: str) -> Any:
    return _cached(
        "affiliate_roi",
        lambda: _revenue().affiliate_roi(start=period.start, end=period.end, currency=currency),
        start=period.start,
        end=period.end,
        currency=currency,
    )


def cohorts_of(period: Period, *, currency: str) -> Any:
    return _cached(
        "cohorts",
        lambda: _reports().cohorts(start=period.start, end=period.end, currency=currency),
        start=period.start,
        end=period.end,
        currency=currency,
    )


def revenue_of(period: Period, *, currency: str) -> Any:
    return _cached(
        "revenue",
        lambda: _revenue().revenue_by_stream(
            start=period.start, end=period.end, currency=currency, group_by=None
        ),
        start=period.start,
        end=period.end,
        currency=currency,
    )


def top_payees_of(period: Period, *, currency: str) -> dict[str, list[Any]]:
    return dict(
        _cached(
            "top_payees",
            lambda: leaders.top_payees_by_type(
                start=period.start, end=period.end, currency=currency, limit=TOP_LIMIT
            ),
            start=period.start,
            end=period.end,
            currency=currency,
        )
    )


# --- presentation -----------------------------------------------------------------------------


def _major(amount: int | None, currency: str) -> str | None:
    """Minor units as an exact decimal string of the major unit (what the charts draw)."""
    return None if amount is None else str(from_minor(amount, currency))


def percent_text(rate: str | None) -> str:
    """'0.0523' -> '5.23 %'; None -> '—'."""
    if rate is None:
        return "—"
    return f"{(Decimal(rate) * 100).quantize(Decimal('0.01'))} %"


@dataclass(frozen=True)
class Column:
    key: str  # the API's field name: the CSV header
    label: str  # what the page shows
    kind: str = "text"  # text | int | money | rate | link


@dataclass
class Table:
    key: str  # ?export=<key>
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    currency: str
    note: str = ""
    unavailable: str = ""  # why the panel has no data, when it has none

    def cell(self, row: dict[str, Any], column: Column) -> str:
        value = row.get(column.key)
        if value is None:
            return "—"
        if column.kind == "money":
            return format_money(int(value), self.currency)
        if column.kind == "rate":
            return percent_text(value)
        if column.kind == "int":
            return f"{int(value):,}"
        return str(value)

    def display_rows(self) -> list[list[dict[str, Any]]]:
        return [
            [
                {
                    "text": self.cell(row, column),
                    "kind": column.kind,
                    "url": row.get(f"{column.key}__url") if column.kind == "link" else None,
                }
                for column in self.columns
            ]
            for row in self.rows
        ]

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([column.key for column in self.columns])
        for row in self.rows:
            writer.writerow(
                ["" if row.get(c.key) is None else row.get(c.key) for c in self.columns]
            )
        return out.getvalue()


@dataclass(frozen=True)
class Tile:
    key: str
    label: str
    value: Any  # raw: int minor units, int count, rate str or None
    previous: Any
    kind: str  # money | int | rate | ratio
    currency: str
    up_is_good: bool = True

    def _text(self, value: Any) -> str:
        if value is None:
            return "—"
        if self.kind == "money":
            return format_money(int(value), self.currency)
        if self.kind == "rate":
            return percent_text(value)
        if self.kind == "ratio":
            return f"{Decimal(value).quantize(Decimal('0.01'))} : 1"
        return f"{int(value):,}"

    @property
    def text(self) -> str:
        return self._text(self.value)

    @property
    def previous_text(self) -> str:
        return self._text(self.previous)

    @property
    def change(self) -> Decimal | int | None:
        if self.value is None or self.previous is None:
            return None
        if self.kind in ("rate", "ratio"):
            return Decimal(self.value) - Decimal(self.previous)
        return int(self.value) - int(self.previous)

    @property
    def change_text(self) -> str:
        change = self.change
        if change is None:
            return "no comparison"
        sign = "+" if change > 0 else ""
        if self.kind == "rate":
            points = (Decimal(change) * 100).quantize(Decimal("0.01"))
            return f"{sign}{points} pts"
        if self.kind == "ratio":
            return f"{sign}{Decimal(change).quantize(Decimal('0.01'))}"
        if self.kind == "money":
            text = format_money(int(change), self.currency)
        else:
            text = f"{int(change):,}"
        if self.previous:
            # relative to the size of the previous value, so the sign is the change's
            pct = (Decimal(int(change)) * 100 / abs(Decimal(int(self.previous)))).quantize(
                Decimal("0.1")
            )
            return f"{sign}{text} ({sign}{pct} %)"
        return f"{sign}{text}"

    @property
    def trend(self) -> str:
        """up / down / flat, and whether that is good: a CSS class."""
        change = self.change
        if not change:
            return "flat"
        good = (change > 0) == self.up_is_good
        return f"{'up' if change > 0 else 'down'} {'good' if good else 'bad'}"

    def as_row(self) -> dict[str, Any]:
        change = self.change
        return {
            "metric": self.key,
            "value": self.value,
            "previous": self.previous,
            "change": None if change is None else str(change),
        }


KPI_COLUMNS = [
    Column("metric", "Metric"),
    Column("value", "Value"),
    Column("previous", "Previous period"),
    Column("change", "Change"),
]

MOVEMENT_COLUMNS = [
    Column("start", "From"),
    Column("end", "To"),
    Column("mrr_start", "MRR at start", "money"),
    Column("new", "New", "money"),
    Column("expansion", "Expansion", "money"),
    Column("reactivation", "Reactivation", "money"),
    Column("contraction", "Contraction", "money"),
    Column("churn", "Churn", "money"),
    Column("net_new", "Net new", "money"),
    Column("mrr_end", "MRR at end", "money"),
    Column("customers_start", "Customers at start", "int"),
    Column("customers_churned", "Customers churned", "int"),
    Column("customer_churn_rate", "Customer churn", "rate"),
    Column("gross_revenue_churn", "Gross revenue churn", "rate"),
    Column("nrr", "NRR", "rate"),
    Column("ltv", "LTV", "money"),
    Column("quick_ratio", "Quick ratio"),
]

STREAM_COLUMNS = [
    Column("stream", "Stream"),
    Column("gross", "Gross", "money"),
    Column("refunds", "Refunds", "money"),
    Column("net_revenue", "Net revenue", "money"),
    Column("commissions", "Affiliate commissions", "money"),
    Column("creator_share", "Creator share", "money"),
    Column("provider_share", "Provider share", "money"),
    Column("stripe_fees", "Stripe fees", "money"),
    Column("disputes", "Disputes", "money"),
    Column("margin", "Margin", "money"),
    Column("gross_margin", "Gross margin", "rate"),
]

PAYEE_COLUMNS = [
    Column("rank", "#", "int"),
    Column("name", "Name", "link"),
    Column("payee_id", "Id"),
    Column("earned", "Earned", "money"),
]

QUEUE_COLUMNS = [
    Column("label", "Queue", "link"),
    Column("count", "Waiting", "int"),
]

PAYEE_TITLES = {
    "affiliate": "Top affiliates",
    "creator": "Top creators",
    "provider": "Top providers",
}


@dataclass
class Heatmap:
    title: str
    months: list[str]  # column headings: M0, M1, …
    rows: list[dict[str, Any]]


def heat_class(rate: str | None) -> str:
    """CSS class of a retention cell: heat-0 … heat-10 by tenths, heat-over above 100 %."""
    if rate is None:
        return "heat-none"
    value = Decimal(rate)
    if value > 1:
        return "heat-over"
    return f"heat-{int((max(value, Decimal(0)) * 10).to_integral_value())}"


def cohort_heatmaps(cohorts: Any, *, currency: str) -> list[Heatmap]:
    width = max((len(row.customer_retention) for row in cohorts.rows), default=0)
    headings = [f"M{k}" for k in range(width)]
    maps = []
    for title, attribute in (
        ("Customer retention", "customer_retention"),
        ("Revenue retention", "revenue_retention"),
    ):
        rows = []
        for row in cohorts.rows:
            rates = list(getattr(row, attribute))
            rates += [None] * (width - len(rates))
            rows.append(
                {
                    "cohort": row.cohort,
                    "customers": f"{row.customers:,}",
                    "mrr": format_money(row.mrr, currency),
                    "cells": [
                        {"text": "" if r is None else percent_text(r), "css": heat_class(r)}
                        for r in rates
                    ],
                }
            )
        maps.append(Heatmap(title=title, months=headings, rows=rows))
    return maps


def cohort_rows(cohorts: Any) -> tuple[list[Column], list[dict[str, Any]]]:
    """The cohorts as one flat table (the CSV): retention per month after the cohort month."""
    width = max((len(row.customer_retention) for row in cohorts.rows), default=0)
    columns = [
        Column("cohort", "Cohort"),
        Column("customers", "Customers", "int"),
        Column("mrr", "MRR", "money"),
    ]
    columns += [Column(f"customer_retention_m{k}", f"Customers M{k}", "rate") for k in range(width)]
    columns += [Column(f"revenue_retention_m{k}", f"Revenue M{k}", "rate") for k in range(width)]
    rows = []
    for row in cohorts.rows:
        flat: dict[str, Any] = {"cohort": row.cohort, "customers": row.customers, "mrr": row.mrr}
        for k in range(width):
            flat[f"customer_retention_m{k}"] = (
                row.customer_retention[k] if k < len(row.customer_retention) else None
            )
            flat[f"revenue_retention_m{k}"] = (
                row.revenue_retention[k] if k < len(row.revenue_retention) else None
            )
        rows.append(flat)
    return columns, rows


def movements_chart(monthly: list[Any], *, currency: str) -> dict[str, Any]:
    """MRR at each month's end (a line, right scale) over the month's movements (stacked bars:
    new, expansion, reactivation up; contraction, churn down), in major units."""

    def series(attribute: str, sign: int = 1) -> list[str | None]:
        return [_major(sign * getattr(m, attribute), currency) for m in monthly]

    return {
        "type": "bar",
        "stacked": True,
        "labels": [f"{m.start:%Y-%m}" for m in monthly],
        "datasets": [
            {
                "label": "MRR at month end",
                "type": "line",
                "axis": "y1",
                "color": "line",
                "data": series("mrr_end"),
            },
            {"label": "New", "color": "new", "data": series("new")},
            {"label": "Expansion", "color": "expansion", "data": series("expansion")},
            {"label": "Reactivation", "color": "reactivation", "data": series("reactivation")},
            {"label": "Contraction", "color": "contraction", "data": series("contraction", -1)},
            {"label": "Churn", "color": "churn", "data": series("churn", -1)},
        ],
        "y_title": f"Movements ({currency.upper()})",
        "y1_title": f"MRR ({currency.upper()})",
    }


def streams_chart(rows: list[dict[str, Any]], *, currency: str) -> dict[str, Any]:
    return {
        "type": "bar",
        "labels": [row["stream"] for row in rows],
        "datasets": [
            {
                "label": "Net revenue",
                "color": "revenue",
                "data": [_major(row["net_revenue"], currency) for row in rows],
            },
            {
                "label": "Margin",
                "color": "margin",
                "data": [_major(row["margin"], currency) for row in rows],
            },
        ],
        "y_title": currency.upper(),
    }


@dataclass
class Dashboard:
    period: Period
    previous: Period
    window: Period
    currency: str
    tiles: list[Tile] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    charts: dict[str, dict[str, Any]] = field(default_factory=dict)
    heatmaps: list[Heatmap] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


def _kpis(board: Dashboard) -> None:
    period, previous, currency = board.period, board.previous, board.currency
    now = summary_on(on=period.end, currency=currency)
    before = summary_on(on=previous.end, currency=currency)
    moved = movements_of(period, currency=currency)
    moved_before = movements_of(previous, currency=currency)
    trials = trial_conversion_of(period)
    trials_before = trial_conversion_of(previous)
    board.tiles = [
        Tile("mrr", "MRR", now.mrr, before.mrr, "money", currency),
        Tile("arr", "ARR", now.arr, before.arr, "money", currency),
        Tile("active_customers", "Active customers", now.active_customers,
             before.active_customers, "int", currency),
        Tile("arpa", "ARPA", now.arpa, before.arpa, "money", currency),
        Tile("net_new", "Net new MRR", moved.net_new, moved_before.net_new, "money", currency),
        Tile("customer_churn_rate", "Customer churn rate", moved.customer_churn_rate,
             moved_before.customer_churn_rate, "rate", currency, up_is_good=False),
        Tile("nrr", "NRR", moved.nrr, moved_before.nrr, "rate", currency),
        Tile("usage_run_rate", "Usage run-rate", now.usage_run_rate, before.usage_run_rate,
             "money", currency),
        Tile("trial_conversion", "Trials converted", trials.rate, trials_before.rate, "rate",
             currency),
    ]  # fmt: skip
    board.tables["kpis"] = Table(
        key="kpis",
        title="Key figures",
        columns=KPI_COLUMNS,
        rows=[tile.as_row() for tile in board.tiles],
        currency=currency,
        note=(
            "MRR, ARR, customers, ARPA and usage run-rate at the end of each period; net new "
            "MRR, churn and NRR over it (amounts in minor units, rates as fractions)."
        ),
    )
    board.tables["movements"] = Table(
        key="movements",
        title="MRR movements",
        columns=MOVEMENT_COLUMNS,
        rows=[moved.as_dict(), moved_before.as_dict()],
        currency=currency,
        note="The picked period, then the previous period of the same length.",
    )


def _affiliate_roi(board: Dashboard) -> None:
    """The affiliate program's ROI as one more tile (and row of the key figures' CSV)."""
    roi = affiliate_roi_of(board.period, currency=board.currency)
    roi_before = affiliate_roi_of(board.previous, currency=board.currency)
    tile = Tile("affiliate_roi", "Affiliate ROI", roi.roi, roi_before.roi, "ratio", board.currency)
    board.tiles.append(tile)
    if "kpis" in board.tables:
        board.tables["kpis"].rows.append(tile.as_row())


def _movements(board: Dashboard) -> None:
    monthly = movements_monthly(board.window, currency=board.currency)
    board.charts["movements"] = movements_chart(monthly, currency=board.currency)
    board.tables["movements_by_month"] = Table(
        key="movements_by_month",
        title="MRR movements by month",
        columns=MOVEMENT_COLUMNS,
        rows=[m.as_dict() for m in monthly],
        currency=board.currency,
        note="Calendar months (UTC), the first and last clipped to the range.",
    )


def _streams(board: Dashboard) -> None:
    report = revenue_of(board.period, currency=board.currency)
    rows = [row.as_dict() for row in report.rows]
    board.charts["streams"] = streams_chart(rows, currency=board.currency)
    board.tables["revenue"] = Table(
        key="revenue",
        title="Revenue and margin by stream",
        columns=STREAM_COLUMNS,
        rows=rows + [row.as_dict() for row in report.totals],
        currency=board.currency,
        note="From the ledger, over the picked period.",
    )


def _cohorts(board: Dashboard) -> None:
    report = cohorts_of(board.window, currency=board.currency)
    board.heatmaps = cohort_heatmaps(report, currency=board.currency)
    columns, rows = cohort_rows(report)
    board.tables["cohorts"] = Table(
        key="cohorts",
        title="Cohorts",
        columns=columns,
        rows=rows,
        currency=board.currency,
        note="Customers by first paid month; retention k months later.",
    )


def _leaders(board: Dashboard) -> None:
    for payee_type, payees in top_payees_of(board.period, currency=board.currency).items():
        rows = [
            {
                "rank": rank,
                "name": payee.name,
                "name__url": payee.admin_url,
                "payee_id": payee.payee_id,
                "earned": payee.earned,
            }
            for rank, payee in enumerate(payees, start=1)
        ]
        key = f"top_{payee_type}s"
        board.tables[key] = Table(
            key=key,
            title=PAYEE_TITLES.get(payee_type, key),
            columns=PAYEE_COLUMNS,
            rows=rows,
            currency=board.currency,
            note="Earned in the picked period.",
        )


# (name, builder, the permission it needs besides DASHBOARD_PERMISSION): revenue by stream
# and the payees' earnings come from the ledger, so they need what its API needs.
LEDGER_PERMISSION = "ledger.view_entry"
LEDGER_TABLES = frozenset({"revenue", "top_affiliates", "top_creators", "top_providers"})
PANELS: tuple[tuple[str, Callable[[Dashboard], None], str | None], ...] = (
    ("kpis", _kpis, None),
    ("affiliate_roi", _affiliate_roi, LEDGER_PERMISSION),
    ("movements", _movements, None),
    ("streams", _streams, LEDGER_PERMISSION),
    ("cohorts", _cohorts, None),
    ("leaders", _leaders, LEDGER_PERMISSION),
)


def dashboard_build(*, period: Period, currency: str, user: Any) -> Dashboard:
    """Every panel of the dashboard for ``period`` in ``currency``.

    A panel whose analytics function is not installed (ImportError/AttributeError from its
    module) is listed in ``unavailable`` instead of failing the page.
    """
    board = Dashboard(
        period=period, previous=period.previous(), window=period.chart_window(), currency=currency
    )
    for name, build, permission in PANELS if currency else ():
        if permission and not user.has_perm(permission):
            continue
        try:
            build(board)
        except (ImportError, AttributeError) as exc:
            board.unavailable[name] = f"not available yet ({exc})"
    board.tables["queues"] = Table(
        key="queues",
        title="Waiting for a person",
        columns=QUEUE_COLUMNS,
        rows=[
            {"key": q.key, "label": q.label, "label__url": q.url, "count": q.count}
            for q in queues.queues_for(user=user)
        ],
        currency=currency,
    )
    return board


# --- the view ---------------------------------------------------------------------------------


def _bad_request(request: HttpRequest, form: forms.Form) -> JsonResponse:
    fields = {name: [str(e) for e in errors] for name, errors in form.errors.items()}
    first = next(iter(fields.values()))[0] if fields else "Invalid input."
    return JsonResponse(error_body("invalid", first, fields), status=400)


def dashboard_view(
    site: Any, request: HttpRequest, extra_context: dict[str, Any] | None = None
) -> HttpResponse:
    """The dashboard page, or one of its tables as CSV with ``?export=<table>``."""
    options = currencies()
    form = DashboardForm(request.GET or None, currencies=options)
    today = timezone.now().date()
    valid = form.is_valid() if form.is_bound else True
    export = request.GET.get("export")
    if export is not None and not valid:
        return _bad_request(request, form)
    if valid and form.is_bound:
        period = Period(start=form.cleaned_data["start"], end=form.cleaned_data["end"])
        currency = form.cleaned_data.get("currency") or ""
    else:
        period = Period(start=today - timedelta(days=DEFAULT_DAYS - 1), end=today)
        currency = ""
    if not currency:
        try:
            currency = most_common_currency(options=options, on=period.end) or ""
        except (ImportError, AttributeError):
            currency = options[0] if options else ""
    board = dashboard_build(period=period, currency=currency, user=request.user)
    if export is not None:
        table = board.tables.get(export)
        if (
            table is None
            and export in LEDGER_TABLES
            and not request.user.has_perm(LEDGER_PERMISSION)
        ):
            message = "This table is for staff who may read the ledger."
            return JsonResponse(error_body("permission_denied", message), status=403)
        if table is None:
            message = f"Unknown table; one of: {', '.join(sorted(board.tables))}."
            return JsonResponse(error_body("invalid", message, {"export": [message]}), status=400)
        response = HttpResponse(table.csv(), content_type="text/csv; charset=utf-8")
        filename = f"{table.key}-{currency}-{period.start}-{period.end}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    if not form.is_bound:
        form = DashboardForm(
            initial={"start": period.start, "end": period.end, "currency": currency},
            currencies=options,
        )
    context = {
        **site.each_context(request),
        "title": "Revenue dashboard",
        "subtitle": None,
        "app_list": site.get_app_list(request),
        "form": form,
        "board": board,
        "export_query": _export_query(period=period, currency=currency),
        "presets": range_presets(today=today, currency=currency),
        # the charts' data as attributes of their canvas (CSP: no <script> element on the page)
        "charts_json": {name: json.dumps(spec) for name, spec in board.charts.items()},
        **(extra_context or {}),
    }
    request.current_app = site.name
    return TemplateResponse(
        request, "admin/analytics/dashboard.html", context, status=200 if valid else 400
    )


def range_presets(*, today: date, currency: str) -> list[tuple[str, str]]:
    """(label, query string) of the picker's shortcuts, all ending today."""
    from urllib.parse import urlencode

    presets = [
        ("Last 7 days", today - timedelta(days=6)),
        ("Last 30 days", today - timedelta(days=DEFAULT_DAYS - 1)),
        ("Last 90 days", today - timedelta(days=89)),
        ("Month to date", today.replace(day=1)),
        ("Year to date", today.replace(month=1, day=1)),
        ("Last 12 months", today - timedelta(days=364)),
    ]
    return [
        (label, urlencode({"start": start, "end": today, "currency": currency}))
        for label, start in presets
    ]


def _export_query(*, period: Period, currency: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"start": period.start, "end": period.end, "currency": currency})
