"""The one module that reads and writes usage events and their rollups.

Everything else (services, selectors, admin, tests) goes through these functions, so the storage
can change (monthly partitions on PostgreSQL, a column store such as ClickHouse past one machine)
without touching the API. Today: `UsageEvent` (on PostgreSQL partitioned by month of the event's
timestamp, with a DEFAULT partition; an ordinary table on SQLite), `UsageEventKey` (customer, event
id, timestamp: the dedupe index, which a partitioned table cannot hold since its unique indexes
must include the timestamp), `UsageRollup` per customer, meter and hour, and `UsageDistinctValue`
for unique-count meters. The same SQL runs on both backends.

Writes, in one transaction: a multi-row `INSERT INTO key … ON CONFLICT (customer, event id) DO
NOTHING RETURNING id, event_id` (`bulk_create(ignore_conflicts=True)` cannot say which rows went
in), then a multi-row INSERT of exactly those events (with the keys' ids) into the events table,
then the rollups of those events are upserted (`ON CONFLICT … DO UPDATE` adding to the hour's
row). A duplicate, even re-sent with another timestamp, therefore never reaches the events or a
rollup, and two processes storing the same batch at once wait on the key's unique index: one
inserts, the other finds the rows there. Rows are written in a fixed order (event id, then meter
and hour) so concurrent batches take their locks in the same order and cannot deadlock.

`usage_partitions_ensure` creates the month partitions ahead (daily beat task, after migrate);
`usage_events_prune` drops raw events past their retention, keeping the rollups (daily too).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from marketplace.models import (
    EVENT_MAX_AGE,
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
    Meter,
    UsageDistinctValue,
    UsageEvent,
    UsageEventKey,
    UsageRollup,
    hour_floor,
)
from revenue_site.retention import DEFAULT_BATCH_SIZE, batched_delete, retention_cutoff

MICROS = 10**QUANTITY_DECIMAL_PLACES


def to_micros(value: Decimal | int) -> int:
    """An exact quantity (at most six decimal places, checked by the caller) in micro-units."""
    return int(Decimal(value).scaleb(QUANTITY_DECIMAL_PLACES))


def from_micros(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-QUANTITY_DECIMAL_PLACES).quantize(Decimal(1).scaleb(-6))


@dataclass(frozen=True)
class NewEvent:
    """A validated event, ready to store: `value` is what the meter aggregates (the quantity
    or the meter's property; for unique counts the property's JSON), `counted` whether the
    meter's filters let it into the rollups."""

    event_id: str
    meter: Meter
    quantity: Decimal
    timestamp: datetime
    properties: dict[str, Any]
    counted: bool
    value_micros: int
    distinct_value: Any = None


@dataclass(frozen=True)
class StoreResult:
    accepted: int
    duplicates: int


def distinct_hash(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _table(model: Any) -> str:
    return str(connection.ops.quote_name(model._meta.db_table))


def _prep(model: Any, field: str, value: Any) -> Any:
    return model._meta.get_field(field).get_db_prep_save(value, connection)


def _db_datetime(value: datetime) -> Any:
    """An aware datetime as the backend takes it (what DateTimeField.get_db_prep_save does,
    without its per-call overhead: thousands of values per batch)."""
    return connection.ops.adapt_datetimefield_value(value)


def _col(model: Any, field: str) -> str:
    return str(connection.ops.quote_name(model._meta.get_field(field).column))


@transaction.atomic
def events_store(*, customer_id: int, events: Sequence[NewEvent]) -> StoreResult:
    """Store the events a customer reported (ids unique within `events`) and roll them up.
    Returns how many were new and how many were already stored (earlier batch or a concurrent
    one); the caller counts duplicates within its batch itself."""
    if not events:
        return StoreResult(accepted=0, duplicates=0)
    received_at = timezone.now()
    ordered = sorted(events, key=lambda e: e.event_id)
    keys = _keys_claim(customer_id=customer_id, events=ordered)
    inserted = [event for event in ordered if event.event_id in keys]
    _events_insert(customer_id=customer_id, events=inserted, ids=keys, received_at=received_at)
    _rollups_add(customer_id=customer_id, events=inserted)
    _distinct_add(customer_id=customer_id, events=inserted)
    return StoreResult(accepted=len(inserted), duplicates=len(ordered) - len(inserted))


def _keys_claim(*, customer_id: int, events: Sequence[NewEvent]) -> dict[str, int]:
    """Insert the (customer, event id) keys not stored yet; their ids by event id. A key being
    inserted by a concurrent transaction makes this one wait for it, then skip it."""
    customer = _prep(UsageEventKey, "customer", customer_id)
    adapt_datetime = connection.ops.adapt_datetimefield_value
    params: list[Any] = []
    for event in events:
        params += [customer, event.event_id, adapt_datetime(event.timestamp)]
    c = {name: _col(UsageEventKey, name) for name in ("customer", "event_id", "timestamp")}
    sql = (
        f"INSERT INTO {_table(UsageEventKey)} ({', '.join(c.values())}) VALUES "  # noqa: S608
        + ", ".join(["(%s, %s, %s)"] * len(events))
        + f" ON CONFLICT ({c['customer']}, {c['event_id']}) DO NOTHING"
        + f" RETURNING {_col(UsageEventKey, 'id')}, {c['event_id']}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {event_id: pk for pk, event_id in cursor.fetchall()}


def _events_insert(
    *, customer_id: int, events: Sequence[NewEvent], ids: dict[str, int], received_at: datetime
) -> None:
    """The events whose keys this transaction inserted, with the keys' ids: none can exist yet,
    so no conflict handling. PostgreSQL: COPY (routed to the months' partitions; about twice
    as fast as a 1,000-row INSERT, whose 8,000 parameters the server has to parse); elsewhere
    a multi-row INSERT."""
    if not events:
        return
    fields = ["id", "customer", "event_id", "meter", "quantity", "timestamp", "properties"]
    fields.append("received_at")
    columns = ", ".join(_col(UsageEvent, name) for name in fields)
    if connection.vendor == "postgresql":
        _events_copy(
            customer_id=customer_id,
            events=events,
            ids=ids,
            received_at=received_at,
            columns=columns,
        )
        return
    customer = _prep(UsageEvent, "customer", customer_id)
    adapt_datetime = connection.ops.adapt_datetimefield_value
    adapt_decimal = connection.ops.adapt_decimalfield_value
    received = adapt_datetime(received_at)
    params: list[Any] = []
    for event in events:
        params += [
            ids[event.event_id],
            customer,
            event.event_id,
            event.meter.pk,
            adapt_decimal(event.quantity, QUANTITY_MAX_DIGITS, QUANTITY_DECIMAL_PLACES),
            adapt_datetime(event.timestamp),
            json.dumps(event.properties),  # what JSONField stores
            received,
        ]
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = f"INSERT INTO {_table(UsageEvent)} ({columns}) VALUES " + ", ".join(  # noqa: S608
        [row_sql] * len(events)
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# COPY's text format: backslash, tab, newline and carriage return escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _events_copy(
    *,
    customer_id: int,
    events: Sequence[NewEvent],
    ids: dict[str, int],
    received_at: datetime,
    columns: str,
) -> None:
    received = received_at.isoformat()
    lines = [
        f"{ids[event.event_id]}\t{customer_id}\t{event.event_id.translate(_COPY_ESCAPES)}\t"
        f"{event.meter.pk}\t{event.quantity:f}\t{event.timestamp.isoformat()}\t"
        f"{json.dumps(event.properties).translate(_COPY_ESCAPES)}\t{received}\n"
        for event in events
    ]
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(
            f"COPY {_table(UsageEvent)} ({columns}) FROM STDIN", io.StringIO("".join(lines))
        )


@dataclass
class _Delta:
    count: int
    sum_micros: int
    max_micros: int
    latest_micros: int
    latest_at: datetime


def _rollups_add(*, customer_id: int, events: Iterable[NewEvent]) -> None:
    deltas: dict[tuple[int, datetime], _Delta] = {}
    for event in events:
        if not event.counted:
            continue
        key = (event.meter.pk, hour_floor(event.timestamp.astimezone(UTC)))
        delta = deltas.get(key)
        if delta is None:
            deltas[key] = _Delta(
                1, event.value_micros, event.value_micros, event.value_micros, event.timestamp
            )
            continue
        delta.count += 1
        delta.sum_micros += event.value_micros
        delta.max_micros = max(delta.max_micros, event.value_micros)
        if event.timestamp >= delta.latest_at:
            delta.latest_micros, delta.latest_at = event.value_micros, event.timestamp
    if not deltas:
        return
    params: list[Any] = []
    for (meter_id, hour), delta in sorted(deltas.items()):
        params += [
            _prep(UsageRollup, "customer", customer_id),
            meter_id,
            _db_datetime(hour),
            delta.count,
            delta.sum_micros,
            delta.max_micros,
            delta.latest_micros,
            _db_datetime(delta.latest_at),
        ]
    names = ["customer", "meter", "hour", "count", "sum_micros", "max_micros", "latest_micros"]
    names.append("latest_at")
    c = {name: _col(UsageRollup, name) for name in names}
    table = _table(UsageRollup)
    newer = f"EXCLUDED.{c['latest_at']} >= {table}.{c['latest_at']}"
    sql = (
        f"INSERT INTO {table} ({', '.join(c.values())}) VALUES "  # noqa: S608 (names from _meta)
        + ", ".join(["(" + ", ".join(["%s"] * len(names)) + ")"] * len(deltas))
        + f" ON CONFLICT ({c['customer']}, {c['meter']}, {c['hour']}) DO UPDATE SET"
        f" {c['count']} = {table}.{c['count']} + EXCLUDED.{c['count']},"
        f" {c['sum_micros']} = {table}.{c['sum_micros']} + EXCLUDED.{c['sum_micros']},"
        f" {c['max_micros']} = CASE WHEN EXCLUDED.{c['max_micros']} > {table}.{c['max_micros']}"
        f" THEN EXCLUDED.{c['max_micros']} ELSE {table}.{c['max_micros']} END,"
        f" {c['latest_micros']} = CASE WHEN {newer}"
        f" THEN EXCLUDED.{c['latest_micros']} ELSE {table}.{c['latest_micros']} END,"
        f" {c['latest_at']} = CASE WHEN {newer}"
        f" THEN EXCLUDED.{c['latest_at']} ELSE {table}.{c['latest_at']} END"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _distinct_add(*, customer_id: int, events: Iterable[NewEvent]) -> None:
    rows = sorted(
        {
            (
                event.meter.pk,
                hour_floor(event.timestamp.astimezone(UTC)),
                distinct_hash(event.distinct_value),
            )
            for event in events
            if event.counted and event.meter.aggregation == Meter.Aggregation.UNIQUE_COUNT
        }
    )
    if not rows:
        return
    names = ["customer", "meter", "hour", "value_hash"]
    c = [_col(UsageDistinctValue, name) for name in names]
    params: list[Any] = []
    for meter_id, hour, value_hash in rows:
        customer = _prep(UsageDistinctValue, "customer", customer_id)
        params += [customer, meter_id, _prep(UsageDistinctValue, "hour", hour), value_hash]
    sql = (
        f"INSERT INTO {_table(UsageDistinctValue)} ({', '.join(c)}) VALUES "  # noqa: S608
        + ", ".join(["(%s, %s, %s, %s)"] * len(rows))
        + f" ON CONFLICT ({', '.join(c)}) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- partitions (PostgreSQL) ---------------------------------------------------------------


def _month_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


def usage_partitions_ensure(*, months_ahead: int = 3, now: datetime | None = None) -> list[str]:
    """On PostgreSQL, the events table's month partitions (UTC) from the month of the oldest
    event still accepted (EVENT_MAX_AGE ago: the previous month, or the one before) through
    `months_ahead` months after the current one, created if missing; returns those created.
    Idempotent, and serialised by an advisory lock. If the DEFAULT partition already holds
    rows of a month being created, they are moved into it (in the same transaction: the new
    table is filled, then attached). Does nothing elsewhere (SQLite: one ordinary table)."""
    if connection.vendor != "postgresql":
        return []
    now = now or timezone.now()
    parent = UsageEvent._meta.db_table
    default = f"{parent}_default"
    created: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('marketplace.usage_partitions'))")
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [parent])
        if cursor.fetchone() != ("p",):
            return []
        start = _month_start(now - EVENT_MAX_AGE)
        last = _month_start(now)
        for _ in range(months_ahead):
            last = _next_month(last)
        while start <= last:
            end = _next_month(start)
            name = f"{parent}_p{start:%Y%m}"
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
            if not cursor.fetchone()[0]:
                _partition_create(cursor, parent, default, name, start, end)
                created.append(name)
            start = end
    return created


def _partition_create(
    cursor: Any, parent: str, default: str, name: str, start: datetime, end: datetime
) -> None:
    qn = connection.ops.quote_name
    ts = _col(UsageEvent, "timestamp")
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {qn(default)} WHERE {ts} >= %s AND {ts} < %s)",  # noqa: S608
        [start, end],
    )
    if not cursor.fetchone()[0]:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {qn(name)} PARTITION OF {qn(parent)}"
            " FOR VALUES FROM (%s) TO (%s)",
            [start, end],
        )
        return
    # Rows that arrived before their month had a partition: move them, then attach (which
    # checks that the DEFAULT partition has none of the month left).
    cursor.execute(
        f"CREATE TABLE {qn(name)} (LIKE {qn(parent)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    cursor.execute(
        f"WITH moved AS (DELETE FROM {qn(default)} WHERE {ts} >= %s AND {ts} < %s"  # noqa: S608
        f" RETURNING *) INSERT INTO {qn(name)} SELECT * FROM moved",
        [start, end],
    )
    cursor.execute(
        f"ALTER TABLE {qn(parent)} ATTACH PARTITION {qn(name)} FOR VALUES FROM (%s) TO (%s)",
        [start, end],
    )


# --- retention -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneResult:
    before: datetime
    partitions_dropped: list[str]
    events_deleted: int
    keys_deleted: int


def usage_events_prune(
    *, now: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> PruneResult:
    """Delete raw events (and their dedupe keys) of whole months (UTC) that ended more than
    ``USAGE_EVENT_RETENTION_DAYS`` ago. The hourly rollups and distinct values, which rating,
    summaries and the explorer read, are kept. On PostgreSQL a month's partition is dropped
    whole (a short lock on the parent, bounded by ``lock_timeout``); rows elsewhere (SQLite,
    the DEFAULT partition) and the keys go in batches. Those months were closed and billed
    long ago, so no event stamped in them can be accepted again; an event id past retention
    can be reused."""
    before = _month_start(retention_cutoff(days=settings.USAGE_EVENT_RETENTION_DAYS, now=now))
    dropped = _partitions_drop(before=before)
    events = batched_delete(UsageEvent.objects.filter(timestamp__lt=before), batch_size=batch_size)
    keys = batched_delete(UsageEventKey.objects.filter(timestamp__lt=before), batch_size=batch_size)
    return PruneResult(
        before=before, partitions_dropped=dropped, events_deleted=events, keys_deleted=keys
    )


def _partitions_drop(*, before: datetime) -> list[str]:
    """Drop the month partitions that end on or before ``before``; their names."""
    if connection.vendor != "postgresql":
        return []
    parent = UsageEvent._meta.db_table
    qn = connection.ops.quote_name
    dropped: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('marketplace.usage_partitions'))")
        cursor.execute("SET LOCAL lock_timeout = '5s'")
        # A table with deferred foreign-key checks still pending in this transaction cannot be
        # dropped: run them now (none are pending when the daily task calls this).
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s)",
            [parent],
        )
        for (name,) in cursor.fetchall():
            month = name.removeprefix(f"{parent}_p")
            if len(month) != 6 or not month.isdigit():
                continue  # the DEFAULT partition
            start = datetime(int(month[:4]), int(month[4:]), 1, tzinfo=UTC)
            if _next_month(start) <= before:
                cursor.execute(f"DROP TABLE {qn(name)}")
                dropped.append(name)
    return sorted(dropped)


# --- reads ---------------------------------------------------------------------------------


def event_get(*, customer_id: int, event_id: str) -> UsageEvent | None:
    """A customer's stored event: its key gives the id and timestamp, so the event's lookup
    reads one month's partition (by its primary key) on PostgreSQL."""
    key = (
        UsageEventKey.objects.filter(customer_id=customer_id, event_id=event_id)
        .values_list("pk", "timestamp")
        .first()
    )
    if key is None:
        return None
    pk, timestamp = key
    return (
        UsageEvent.objects.select_related("meter")
        .filter(pk=pk, timestamp=timestamp, customer_id=customer_id)
        .first()
    )


def event_ids_stored(*, customer_id: int, event_ids: set[str]) -> set[str]:
    """Which of these event ids the customer already has stored."""
    if not event_ids:
        return set()
    return set(
        UsageEventKey.objects.filter(customer_id=customer_id, event_id__in=event_ids).values_list(
            "event_id", flat=True
        )
    )


def events_for_admin() -> QuerySet[UsageEvent]:
    """Every stored event, newest id first, with its customer and meter: the staff console's
    list (paginated there; filters narrow it by month of `timestamp`, which on PostgreSQL reads
    only that month's partition, by meter, or by customer through the (customer, event id)
    index). Ordered by id, the primary key's first column in every partition: a page is a merge
    of index scans, never a sort of the table."""
    return UsageEvent.objects.select_related("customer", "meter").order_by("-pk")


def event_months(*, now: datetime | None = None, back: int = 5) -> list[datetime]:
    """The starts (UTC) of the current month and the `back` months before it, newest first:
    the months an event list is filtered by."""
    start = _month_start(now or timezone.now())
    months = [start]
    for _ in range(back):
        start = _month_start(start - timedelta(days=1))
        months.append(start)
    return months


def events_for_customer(*, customer_id: int) -> list[UsageEvent]:
    """Every stored event of a customer (for recounts and checks; not for serving summaries)."""
    return list(
        UsageEvent.objects.select_related("meter").filter(customer_id=customer_id).order_by("pk")
    )


@dataclass(frozen=True)
class HourRollup:
    hour: datetime
    count: int
    sum: Decimal
    max: Decimal
    latest: Decimal
    latest_at: datetime


def rollups_read(
    *, customer_id: int, meter: Meter, start: datetime, end: datetime
) -> list[HourRollup]:
    """The hourly rollups of a customer and meter for the hours starting in [start, end)."""
    rows = (
        UsageRollup.objects.filter(
            customer_id=customer_id, meter=meter, hour__gte=start, hour__lt=end
        )
        .order_by("hour")
        .values_list("hour", "count", "sum_micros", "max_micros", "latest_micros", "latest_at")
    )  # tuples, not model instances: a month is 720 rows per meter
    return [
        HourRollup(
            hour=hour,
            count=count,
            sum=from_micros(sum_micros),
            max=from_micros(max_micros),
            latest=from_micros(latest_micros),
            latest_at=latest_at,
        )
        for hour, count, sum_micros, max_micros, latest_micros, latest_at in rows
    ]


def distinct_counts(
    *, customer_id: int, meter: Meter, start: datetime, end: datetime, group_by: str
) -> tuple[int, dict[datetime, int]]:
    """For a unique-count meter: distinct values over the hours in [start, end), in total and
    per bucket (`day` or `hour`, UTC)."""
    rows = UsageDistinctValue.objects.filter(
        customer_id=customer_id, meter=meter, hour__gte=start, hour__lt=end
    )
    total = rows.aggregate(n=Count("value_hash", distinct=True))["n"] or 0
    trunc = TruncDay("hour", tzinfo=UTC) if group_by == "day" else TruncHour("hour", tzinfo=UTC)
    buckets = (
        rows.annotate(bucket=trunc)
        .values("bucket")
        .annotate(n=Count("value_hash", distinct=True))
        .order_by("bucket")
    )
    return total, {row["bucket"]: row["n"] for row in buckets}


def rollup_totals(*, customer_id: int) -> dict[int, dict[str, Any]]:
    """Per meter id: the rollups' count, sum and max over all time (for recount checks)."""
    rows = (
        UsageRollup.objects.filter(customer_id=customer_id)
        .values("meter_id")
        .annotate(count=Sum("count"), sum=Sum("sum_micros"), max=Max("max_micros"))
    )
    return {
        row["meter_id"]: {
            "count": row["count"],
            "sum": from_micros(row["sum"]),
            "max": from_micros(row["max"]),
        }
        for row in rows
    }


def events_ingested_by_meter() -> dict[str, int]:
    """Per meter code: how many events were ever stored, from the rollups (the /metrics
    counter; one aggregate over the rollups, never the events)."""
    rows = (
        UsageRollup.objects.values("meter__code")
        .annotate(events=Sum("count"))
        .order_by("meter__code")
    )
    return {row["meter__code"]: int(row["events"] or 0) for row in rows}


__all__ = [
    "HourRollup",
    "NewEvent",
    "StoreResult",
    "distinct_counts",
    "distinct_hash",
    "event_get",
    "event_ids_stored",
    "events_for_customer",
    "events_ingested_by_meter",
    "events_store",
    "from_micros",
    "rollup_totals",
    "rollups_read",
    "to_micros",
    "usage_events_prune",
    "usage_partitions_ensure",
]
