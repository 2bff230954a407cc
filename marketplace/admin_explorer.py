"""The staff console's usage explorer: one customer's usage of one meter over a date range
(UTC), in total as the meter aggregates it, per day or hour, and as a chart.

Mounted by `MeterAdmin.get_urls` at /admin/marketplace/meter/explorer/ and seen by staff who
may view meters. It parses the form and reads through `selectors.usage_summary` (the hourly
rollups, never raw events); everything here is presentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone

from accounts.models import User
from marketplace import selectors
from marketplace.models import Meter, month_bounds

MAX_DAYS = 366
MAX_HOURLY_DAYS = 31  # 744 hourly buckets: a chart and a table staff can still read
GROUPINGS = (("day", "Day"), ("hour", "Hour"))
# Aggregations whose empty bucket is zero; a maximum or latest value of nothing is no value.
_ZERO_WHEN_EMPTY = {
    Meter.Aggregation.COUNT,
    Meter.Aggregation.SUM,
    Meter.Aggregation.UNIQUE_COUNT,
}


class UsageExplorerForm(forms.Form):
    customer = forms.CharField(
        label="Customer email",
        max_length=254,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "size": 32}),
    )
    meter = forms.ModelChoiceField(queryset=Meter.objects.none(), empty_label=None)
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(label="Per", choices=GROUPINGS, initial="day")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["meter"].queryset = selectors.meter_list_for_admin()  # type: ignore[attr-defined]
        self.suggestions: list[User] = []

    def clean_customer(self) -> User:
        email = self.cleaned_data["customer"]
        customer = selectors.usage_explorer_customer_get(email=email)
        if customer is None:
            self.suggestions = selectors.usage_explorer_customer_search(text=email)
            raise forms.ValidationError("No customer has this email.")
        return customer

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start is None or end is None:
            return data
        if end < start:
            self.add_error("end", "The end is before the start.")
            return data
        days = (end - start).days + 1
        if days > MAX_DAYS:
            self.add_error("end", f"At most {MAX_DAYS} days.")
        elif data.get("group_by") == "hour" and days > MAX_HOURLY_DAYS:
            self.add_error("group_by", f"Per hour: at most {MAX_HOURLY_DAYS} days.")
        elif end == date.max:
            self.add_error("end", "Pick an earlier date.")  # its next day does not exist
        return data

    def range(self) -> tuple[datetime, datetime]:
        """[start, end) in UTC: midnight of the first day to midnight after the last."""
        start = datetime.combine(self.cleaned_data["start"], time.min, tzinfo=UTC)
        end = datetime.combine(self.cleaned_data["end"] + timedelta(days=1), time.min, tzinfo=UTC)
        return start, end


def initial_values(*, meter_id: str | None) -> dict[str, Any]:
    """The unbound form: the current calendar month (UTC), per day, the meter asked for."""
    start, end = month_bounds(timezone.now().astimezone(UTC))
    initial: dict[str, Any] = {
        "start": start.date(),
        "end": (end - timedelta(days=1)).date(),
        "group_by": "day",
    }
    if meter_id and meter_id.isdigit():
        initial["meter"] = int(meter_id)
    return initial


def quantity_text(value: Decimal | None) -> str:
    """A quantity without trailing zeros (12.500000 → 12.5, 100.000000 → 100)."""
    if value is None:
        return "—"
    return f"{value.normalize():f}"


@dataclass(frozen=True)
class ExplorerRow:
    label: str
    value: str


@dataclass(frozen=True)
class ExplorerResult:
    summary: selectors.UsageSummary
    total: str
    rows: list[ExplorerRow]
    chart: dict[str, Any]


def _label(at: datetime, group_by: str) -> str:
    return f"{at:%Y-%m-%d %H:00}" if group_by == "hour" else f"{at:%Y-%m-%d}"


def explorer_result(summary: selectors.UsageSummary) -> ExplorerResult:
    """The table (buckets with usage) and the chart (every bucket of the range, empty ones
    as zero or, for a maximum or latest value, as a gap)."""
    step = timedelta(hours=1) if summary.group_by == "hour" else timedelta(days=1)
    values = {bucket.start: bucket.value for bucket in summary.buckets}
    empty = Decimal(0) if summary.meter.aggregation in _ZERO_WHEN_EMPTY else None
    labels, data = [], []
    at = summary.start
    while at < summary.end:
        value = values.get(at, empty)
        labels.append(_label(at, summary.group_by))
        data.append(None if value is None else quantity_text(value))
        at += step
    meter = summary.meter
    chart = {
        "type": "bar",
        "labels": labels,
        "datasets": [{"label": f"{meter.name} ({meter.get_aggregation_display()})", "data": data}],
        "y_title": meter.unit,
    }
    rows = [
        ExplorerRow(label=_label(bucket.start, summary.group_by), value=quantity_text(bucket.value))
        for bucket in summary.buckets
    ]
    return ExplorerResult(
        summary=summary, total=quantity_text(summary.value), rows=rows, chart=chart
    )
