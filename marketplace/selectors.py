"""API billing reads: API keys (for their owner, for authentication, for the admin), meters,
stored events and usage summaries (from the rollups, through `usage_store`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import User
from marketplace import usage_store
from marketplace.models import ApiKey, Meter, UsageEvent, month_bounds


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    """A customer's own keys, newest first (revoked ones included, marked)."""
    return ApiKey.objects.filter(user=user).order_by("-created_at", "-pk")


def api_key_get(*, user: User, api_key_id: int) -> ApiKey:
    """A customer's own key; anyone else's is a 404."""
    api_key = ApiKey.objects.filter(user=user, pk=api_key_id).first()
    if api_key is None:
        raise Http404
    return api_key


def api_key_for_hash(*, secret_hash: str) -> ApiKey | None:
    """The key with this hash and its user, read from the database on every request: a
    revocation is seen at once by every process."""
    return ApiKey.objects.select_related("user").filter(secret_hash=secret_hash).first()


def api_key_list_for_admin() -> QuerySet[ApiKey]:
    return ApiKey.objects.select_related("user")


def meter_list_for_admin() -> QuerySet[Meter]:
    return Meter.objects.all()


def meter_get_active(*, code: str) -> Meter | None:
    return Meter.objects.filter(code=code, is_active=True).first()


@dataclass(frozen=True)
class StoredEvent:
    event: UsageEvent
    period_start: datetime
    period_end: datetime


def usage_event_get(*, customer: User, event_id: str) -> StoredEvent:
    """A customer's stored event and the billing period (calendar month, UTC) it counts in;
    another customer's id, or one never stored, is a 404."""
    event = usage_store.event_get(customer_id=customer.pk, event_id=event_id)
    if event is None:
        raise Http404
    start, end = month_bounds(event.timestamp)
    return StoredEvent(event=event, period_start=start, period_end=end)


@dataclass(frozen=True)
class Bucket:
    start: datetime
    value: Decimal


@dataclass(frozen=True)
class UsageSummary:
    meter: Meter
    start: datetime
    end: datetime
    group_by: str
    value: Decimal
    buckets: list[Bucket] = field(default_factory=list)


def _aggregate(meter: Meter, rows: list[usage_store.HourRollup]) -> Decimal:
    if not rows:
        return Decimal(0)
    match meter.aggregation:
        case Meter.Aggregation.COUNT:
            return Decimal(sum(row.count for row in rows))
        case Meter.Aggregation.SUM:
            return sum((row.sum for row in rows), Decimal(0))
        case Meter.Aggregation.MAX:
            return max(row.max for row in rows)
        case _:  # latest: the value of the newest event
            return max(rows, key=lambda row: row.latest_at).latest


def usage_summary(
    *, customer: User, meter: Meter, start: datetime, end: datetime, group_by: str
) -> UsageSummary:
    """A customer's usage of one meter over the hours (UTC) that start in [start, end), in
    total and per day or hour, aggregated as the meter says (a count, a sum, a maximum, the
    number of distinct values, or the latest value). Read from the hourly rollups only, never
    from raw events, so its cost depends on the range, not on the traffic.

    Usage only: what it costs (prices, free allowances, the charge so far) is rated by the
    rating engine, which this summary does not call yet."""
    if meter.aggregation == Meter.Aggregation.UNIQUE_COUNT:
        total, per_bucket = usage_store.distinct_counts(
            customer_id=customer.pk, meter=meter, start=start, end=end, group_by=group_by
        )
        buckets = [Bucket(start=at, value=Decimal(n)) for at, n in sorted(per_bucket.items())]
        return UsageSummary(meter, start, end, group_by, Decimal(total), buckets)
    rows = usage_store.rollups_read(customer_id=customer.pk, meter=meter, start=start, end=end)
    grouped: dict[datetime, list[usage_store.HourRollup]] = {}
    for row in rows:
        bucket = row.hour if group_by == "hour" else row.hour.replace(hour=0)
        grouped.setdefault(bucket, []).append(row)
    buckets = [Bucket(start=at, value=_aggregate(meter, group)) for at, group in grouped.items()]
    return UsageSummary(meter, start, end, group_by, _aggregate(meter, rows), buckets)
