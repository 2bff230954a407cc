"""API billing: meters, API keys, usage events and their hourly rollups.

Quantities have a fixed scale of six decimal places. An event keeps its quantity as a
`Decimal` (exact on PostgreSQL); the rollups keep theirs as whole micro-units
(`BigIntegerField`), because they are added up in SQL and SQLite has no exact decimal
arithmetic (its NUMERIC columns hold floats). `usage_store` converts between the two.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

SCOPE_USAGE_WRITE = "usage:write"
SCOPE_USAGE_READ = "usage:read"
SCOPES = (SCOPE_USAGE_WRITE, SCOPE_USAGE_READ)

QUANTITY_DECIMAL_PLACES = 6
# 9 integer digits + 6 decimals: 15 significant digits, exact through every backend.
QUANTITY_MAX_DIGITS = 15


class Meter(models.Model):
    """What a customer's usage is measured in. A meter does not know what it measures: events
    name it by `code`, and it aggregates their quantities (or one property) per period.

    Events are rolled up as they arrive, under the meter's definition at that moment; so the
    definition (code, aggregation, property, filters) is fixed once the meter exists."""

    class Aggregation(models.TextChoices):
        COUNT = "count", "Count of events"
        SUM = "sum", "Sum"
        MAX = "max", "Maximum"
        UNIQUE_COUNT = "unique_count", "Count of distinct values"
        LATEST = "latest", "Latest value"

    code = models.SlugField(
        max_length=64,
        unique=True,
        validators=[RegexValidator(r"^[a-z0-9_]+$", "Lowercase letters, digits and _ only.")],
        help_text="What events send as `metric`, e.g. api_calls.",
    )
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=50, help_text="Singular, e.g. call, token, GB.")
    aggregation = models.CharField(max_length=20, choices=Aggregation.choices)
    property = models.CharField(
        max_length=100,
        blank=True,
        help_text="Event property aggregated instead of `quantity` (sum, max, latest), or whose "
        "distinct values are counted (unique count). Blank: the event's quantity.",
    )
    filters = models.JSONField(
        default=dict,
        blank=True,
        help_text='Only events whose properties equal these count, e.g. {"region": "eu"}.',
    )
    is_active = models.BooleanField(default=True, help_text="Inactive: events are refused.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(aggregation="unique_count") | ~models.Q(property=""),
                name="marketplace_meter_unique_count_needs_property",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        if self.aggregation == self.Aggregation.UNIQUE_COUNT and not self.property:
            raise ValidationError({"property": "A unique count counts the values of a property."})
        if self.aggregation == self.Aggregation.COUNT and self.property:
            raise ValidationError({"property": "A count does not read a property."})
        if not isinstance(self.filters, dict) or any(
            isinstance(value, dict | list) for value in self.filters.values()
        ):
            raise ValidationError({"filters": "An object of property: value (equals-matches)."})


class ApiKey(models.Model):
    """A customer's API key. Only a keyed hash of the secret is stored (`marketplace.keys`);
    the visible `prefix` identifies it in lists and logs."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=32, unique=True, help_text="rk_live_/rk_test_ + 8.")
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


# How old an event may be when reported (the store keeps partitions back to that month).
EVENT_MAX_AGE = timedelta(days=35)


class UsageEventKey(models.Model):
    """The (customer, event id) of every stored event, whatever its timestamp: the unique index
    that makes retries duplicates. `UsageEvent` cannot hold it on PostgreSQL, where it is
    partitioned by month and a unique index must include the timestamp. An event's row has
    this row's id and timestamp. Read and written only through `marketplace.usage_store`."""

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # the unique index starts with it
    )
    event_id = models.CharField(max_length=255)
    timestamp = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "event_id"], name="marketplace_usageeventkey_customer_event_id"
            ),
        ]

    def __str__(self) -> str:
        return self.event_id


class UsageEvent(models.Model):
    """One reported unit of usage, stored once per (customer, event id) whatever the retries
    (`UsageEventKey` decides). On PostgreSQL the table is partitioned by month of `timestamp`
    (migration 0003, `usage_store.usage_partitions_ensure`): its primary key is (id, timestamp)
    there. Read and written only through `marketplace.usage_store`."""

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="usage_events",
        db_index=False,  # (customer, event_id) starts with it
    )
    event_id = models.CharField(max_length=255)
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="events")
    quantity = models.DecimalField(
        max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES
    )
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gte=0), name="marketplace_usageevent_quantity_gte_0"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "event_id"], name="marketplace_usageevent_cust_ev"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} ({self.meter_id})"


class UsageRollup(models.Model):
    """Per customer, meter and hour (UTC): the events counted, the sum and maximum of their
    values, and the value of the latest one, in micro-units (value * 10^6). Kept exact in the
    transaction that inserts the events; summaries read only these rows."""

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="+")
    hour = models.DateTimeField()
    count = models.BigIntegerField(default=0)
    sum_micros = models.BigIntegerField(default=0)
    max_micros = models.BigIntegerField(default=0)
    latest_micros = models.BigIntegerField(default=0)
    latest_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "meter", "hour"], name="marketplace_usagerollup_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}/{self.meter_id}@{self.hour:%Y-%m-%dT%H}"


class UsageDistinctValue(models.Model):
    """For unique-count meters: each distinct property value seen per customer, meter and hour
    (as a hash of its JSON), so distinct counts over any range of hours need no raw events."""

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="+")
    hour = models.DateTimeField()
    value_hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "meter", "hour", "value_hash"],
                name="marketplace_usagedistinctvalue_key",
            ),
        ]

    def __str__(self) -> str:
        return self.value_hash


def hour_floor(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def month_bounds(at: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) containing `at`: [start, end)."""
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end
