"""API billing: meters, API keys, usage events and their hourly rollups.

Quantities have a fixed scale of six decimal places. An event keeps its quantity as a
`Decimal` (exact on PostgreSQL); the rollups keep theirs as whole micro-units
(`BigIntegerField`), because they are added up in SQL and SQLite has no exact decimal
arithmetic (its NUMERIC columns hold floats). `usage_store` converts between the two.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from marketplace import rating

SCOPE_USAGE_WRITE = "usage:write"
SCOPE_USAGE_READ = "usage:read"
SCOPES = (SCOPE_USAGE_WRITE, SCOPE_USAGE_READ)

# The meter the catalog always has: any key may report it, and a subscription plan's "API calls
# per month" is a free allowance on it.
API_CALLS = "api_calls"

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
    prefix = models.CharField(max_length=32, unique=True, help_text="rk_live_/rk_test_ + 16 hex.")
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


class ApiPlan(models.Model):
    """A usage price list: what each meter costs a customer on this plan, in one currency.

    Customers without a plan of their own (`CustomerApiPlan`) are rated on the default plan;
    with no default plan, their usage is recorded but not charged."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    currency = models.CharField(
        max_length=3,
        validators=[RegexValidator(r"^[a-z]{3}$", "A lowercase ISO 4217 code, e.g. usd.")],
    )
    is_default = models.BooleanField(
        default=False, help_text="Rates every customer without a plan of their own (one plan)."
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive: not offered; customers already on it keep it."
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name = "API plan"
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="marketplace_apiplan_one_default",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class ApiPlanCharge(models.Model):
    """How an API plan prices one meter's usage in a period: a price model, its amounts in
    minor units (sub-minor allowed, as Stripe's `unit_amount_decimal`), and free units per
    period taken off the usage first. `price()` is the rating engine's view of it."""

    class PriceModel(models.TextChoices):
        PER_UNIT = "per_unit", "Per unit"
        PACKAGE = "package", "Per package of N units"
        GRADUATED = "graduated", "Graduated tiers"
        VOLUME = "volume", "Volume tiers"
        PERCENTAGE = "percentage", "Percentage of the usage (an amount in minor units)"

    class PackageRound(models.TextChoices):
        UP = "up", "Every started package"
        DOWN = "down", "Completed packages only"

    plan = models.ForeignKey(ApiPlan, on_delete=models.CASCADE, related_name="charges")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="charges")
    price_model = models.CharField(max_length=20, choices=PriceModel.choices)
    unit_amount = models.DecimalField(
        max_digits=24,
        decimal_places=12,
        null=True,
        blank=True,
        help_text="Per unit: minor units per unit (0.1 = a tenth of a cent).",
    )
    package_size = models.PositiveIntegerField(null=True, blank=True)
    package_amount = models.DecimalField(
        max_digits=24, decimal_places=12, null=True, blank=True, help_text="Minor units."
    )
    package_round = models.CharField(
        max_length=4, choices=PackageRound.choices, default=PackageRound.UP
    )
    tiers = models.JSONField(
        default=list,
        blank=True,
        help_text="Graduated or volume: Stripe's shape, e.g. "
        '[{"up_to": 10000, "unit_amount_decimal": "0.1"}, {"up_to": null, "unit_amount": 0, '
        '"flat_amount": 500}]; up_to inclusive, null for the last tier.',
    )
    percent = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Percentage: 2.5 is 2.5 % of the metered amount (minor units).",
    )
    free_units = models.DecimalField(
        max_digits=21,
        decimal_places=QUANTITY_DECIMAL_PLACES,
        default=0,
        help_text="Units free every period before the price applies.",
    )

    class Meta:
        ordering = ["plan", "meter"]
        verbose_name = "API plan charge"
        constraints = [
            models.UniqueConstraint(fields=["plan", "meter"], name="marketplace_charge_key"),
            models.CheckConstraint(
                condition=models.Q(free_units__gte=0), name="marketplace_charge_free_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan_id}: {self.meter_id} ({self.price_model})"

    def price(self, *, currency: str, extra_free_units: Decimal = Decimal(0)) -> rating.Price:
        """The rating engine's price; raises rating.RatingError (naming the field) when the
        row does not make one."""
        return rating.Price(
            model=self._model(),
            currency=currency,
            free_units=Decimal(self.free_units) + extra_free_units,
        )

    def _model(self) -> rating.PriceModel:
        def need(name: str) -> Any:
            value = getattr(self, name)
            if value is None:
                raise rating.RatingError(f"{name}: required by a {self.price_model} price.")
            return value

        match self.price_model:
            case self.PriceModel.PER_UNIT:
                return rating.PerUnit(unit_amount=need("unit_amount"))
            case self.PriceModel.PACKAGE:
                return rating.Package(
                    package_size=need("package_size"),
                    package_amount=need("package_amount"),
                    round=self.package_round,  # type: ignore[arg-type]
                )
            case self.PriceModel.GRADUATED | self.PriceModel.VOLUME:
                if not isinstance(self.tiers, list) or not self.tiers:
                    raise rating.RatingError("tiers: required by a tiered price.")
                try:
                    tiers = rating.tiers_from_stripe(self.tiers)
                except (AttributeError, TypeError, ValueError) as exc:
                    raise rating.RatingError(f"tiers: {exc}") from exc
                if self.price_model == self.PriceModel.VOLUME:
                    return rating.Volume(tiers=tiers)
                return rating.Graduated(tiers=tiers)
            case self.PriceModel.PERCENTAGE:
                return rating.Percentage(rate=Decimal(need("percent")) / 100)
        raise rating.RatingError(f"price_model: unknown model {self.price_model!r}.")

    def clean(self) -> None:
        if self.price_model not in self.PriceModel.values:
            return  # the field's own choices validation names it
        try:
            self._model()
        except rating.RatingError as exc:
            field, _, message = str(exc).partition(": ")
            names = {f.name for f in self._meta.fields}
            raise ValidationError(
                {field: message} if field in names else {"price_model": str(exc)}
            ) from exc


class CustomerApiPlan(models.Model):
    """The API plan a customer is rated on (instead of the default plan). A change applies to
    every period not yet closed."""

    customer = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_plan"
    )
    plan = models.ForeignKey(ApiPlan, on_delete=models.PROTECT, related_name="customers")
    assigned_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "customer API plan"

    def __str__(self) -> str:
        return f"{self.customer_id} → {self.plan_id}"


class UsagePeriodClose(models.Model):
    """Closing one customer's usage period: rate it, bill it through Stripe, book it when paid.

    A multi-step job with a status, so a crash or a Stripe outage resumes where it stopped:
    RATING (claimed) → INVOICING (lines rated and fixed; Stripe draft invoice and its items
    being created, each with an idempotency key) → FINALIZED (Stripe collects) → PAID (the
    invoice's `invoice.paid`; the revenue is booked by the invoice postings). A period whose
    charge is zero ends NOTHING_TO_BILL without an invoice. A failed attempt keeps its step,
    counts the attempt, records the error and is retried from there.

    One invoice holds one currency, so a period whose charges come in several is billed as
    one invoice per currency: the close of (customer, period) (``split_from`` null: the row
    the unique constraint lets one worker claim) keeps one currency's lines, and rating
    creates a **split** close (``split_from`` that row) per other currency, INVOICING with
    its own lines, amount, Stripe invoice, attempts and backoff."""

    class Status(models.TextChoices):
        RATING = "rating", "Rating"
        INVOICING = "invoicing", "Invoicing in Stripe"
        FINALIZED = "finalized", "Invoice finalized"
        PAID = "paid", "Paid"
        NOTHING_TO_BILL = "nothing_to_bill", "Nothing to bill"

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="usage_period_closes"
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RATING)
    plan = models.ForeignKey(
        ApiPlan, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    split_from = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="splits",
        db_index=False,  # the split key's index starts with it
        help_text="The period's close whose rating split this currency's charges off "
        "(blank: the period's own close).",
    )
    currency = models.CharField(max_length=3, blank=True)
    amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units.")
    stripe_invoice_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start", "customer_id"]
        verbose_name = "usage period close"
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "period_start"],
                condition=models.Q(split_from__isnull=True),
                name="marketplace_periodclose_key",
            ),
            models.UniqueConstraint(
                fields=["split_from", "currency"],
                condition=models.Q(split_from__isnull=False),
                name="marketplace_periodclose_split_key",
            ),
            models.CheckConstraint(
                condition=models.Q(split_from__isnull=True)
                | (~models.Q(status="rating") & ~models.Q(currency="")),
                name="marketplace_periodclose_split_rated",
            ),
            models.CheckConstraint(
                condition=models.Q(amount__isnull=True) | models.Q(amount__gte=0),
                name="marketplace_periodclose_amount_gte_0",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["stripe_invoice_id"]),
        ]

    def __str__(self) -> str:
        split = f" {self.currency}" if self.split_from_id else ""
        return f"{self.customer_id} {self.period_start:%Y-%m}{split} ({self.status})"

    @property
    def is_open(self) -> bool:
        """Still accepting late events: not rated yet."""
        return self.status == self.Status.RATING


class UsageChargeLine(models.Model):
    """One rated charge in a closed period; becomes one Stripe invoice item. Either a meter's
    (API usage, ``meter`` set) or a charge source's (``source`` and ``reference`` set, e.g.
    ``content`` / ``license-12-uses``: see ``period_close.charge_source_register``)."""

    period_close = models.ForeignKey(
        UsagePeriodClose, on_delete=models.CASCADE, related_name="lines"
    )
    meter = models.ForeignKey(
        Meter, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    source = models.CharField(
        max_length=32, blank=True, help_text="The charge source (blank: the meter's line)."
    )
    reference = models.CharField(
        max_length=100, blank=True, help_text="What the source charges, unique in the close."
    )
    quantity = models.DecimalField(max_digits=30, decimal_places=QUANTITY_DECIMAL_PLACES)
    free_quantity = models.DecimalField(max_digits=30, decimal_places=QUANTITY_DECIMAL_PLACES)
    billable_quantity = models.DecimalField(max_digits=30, decimal_places=QUANTITY_DECIMAL_PLACES)
    amount = models.BigIntegerField(help_text="Minor units.")
    description = models.CharField(max_length=500)
    stripe_invoice_item_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["period_close", "source", "meter__code", "reference"]
        constraints = [
            models.UniqueConstraint(
                fields=["period_close", "meter"], name="marketplace_chargeline_key"
            ),
            models.UniqueConstraint(
                fields=["period_close", "source", "reference"],
                condition=~models.Q(source=""),
                name="marketplace_chargeline_source_key",
            ),
            models.CheckConstraint(
                condition=(models.Q(meter__isnull=False) & models.Q(source=""))
                | (models.Q(meter__isnull=True) & ~models.Q(source="") & ~models.Q(reference="")),
                name="marketplace_chargeline_meter_or_source",
            ),
            models.CheckConstraint(
                condition=models.Q(amount__gte=0), name="marketplace_chargeline_amount_gte_0"
            ),
        ]

    def __str__(self) -> str:
        what = self.meter_id if self.meter_id is not None else f"{self.source}:{self.reference}"
        return f"{what}: {self.amount}"


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
        # Retention deletes keys by age (usage_store.usage_events_prune).
        indexes = [models.Index(fields=["timestamp"], name="marketplace_usageeventkey_ts")]

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
