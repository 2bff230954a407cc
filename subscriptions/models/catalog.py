"""Our plan catalog. A plan starts in our admin (pushed to Stripe: these rows hold the spec we
push and what Stripe does not know, tier rank and entitlements) or in Stripe (pulled by
`stripe_catalog sync` and the product/price webhooks: every field comes from the Stripe Product,
its metadata and its Prices). `source` says which, and so who may change the row."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from revenue_site.money import MoneyError, normalize_currency
from subscriptions.pricing import TiersError, tiers_parse


class Source(models.TextChoices):
    ADMIN = "admin", "Our admin (pushed to Stripe)"
    STRIPE = "stripe", "Stripe (pulled; edit it in Stripe)"


class Plan(models.Model):
    Source = Source

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    tier_rank = models.PositiveSmallIntegerField(
        default=0, help_text="Higher is a higher tier; upgrades go up in rank."
    )
    # Entitlements: null means unlimited.
    seats = models.PositiveIntegerField(null=True, blank=True)
    api_calls_per_month = models.PositiveBigIntegerField(null=True, blank=True)
    features = models.JSONField(
        default=dict, blank=True, help_text='Feature flags, e.g. {"sso": true, "audit_log": false}.'
    )
    stripe_product_id = models.CharField(max_length=255, blank=True, db_index=True)
    source = models.CharField(
        max_length=6,
        choices=Source.choices,
        default=Source.ADMIN,
        editable=False,
        help_text="Where the plan is edited: our admin, or Stripe (synced from its Product).",
    )
    is_archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tier_rank", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_product_id"],
                condition=~Q(stripe_product_id=""),
                name="subscriptions_plan_unique_stripe_product",
            )
        ]

    def __str__(self) -> str:
        return self.name


class PlanPrice(models.Model):
    Source = Source

    class Interval(models.TextChoices):
        DAY = "day", "Daily"
        WEEK = "week", "Weekly"
        MONTH = "month", "Monthly"
        YEAR = "year", "Yearly"

    class BillingScheme(models.TextChoices):
        PER_UNIT = "per_unit", "Per unit"
        TIERED = "tiered", "Tiered"

    class TiersMode(models.TextChoices):
        NONE = "", "—"
        GRADUATED = "graduated", "Graduated"
        VOLUME = "volume", "Volume"

    class UsageType(models.TextChoices):
        LICENSED = "licensed", "Licensed (per seat)"
        METERED = "metered", "Metered"

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="prices")
    nickname = models.CharField(max_length=100, blank=True)
    lookup_key = models.SlugField(max_length=200, unique=True)
    currency = models.CharField(max_length=3, default="usd")
    interval = models.CharField(max_length=5, choices=Interval.choices, default=Interval.MONTH)
    interval_count = models.PositiveSmallIntegerField(default=1)
    billing_scheme = models.CharField(
        max_length=8, choices=BillingScheme.choices, default=BillingScheme.PER_UNIT
    )
    unit_amount = models.BigIntegerField(
        null=True, blank=True, help_text="Minor units per unit (per-unit prices)."
    )
    tiers_mode = models.CharField(
        max_length=9, choices=TiersMode.choices, default=TiersMode.NONE, blank=True
    )
    tiers = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"up_to": 5, "unit_amount": 1500, "flat_amount": 0}, {"up_to": null, ...}]',
    )
    usage_type = models.CharField(
        max_length=8, choices=UsageType.choices, default=UsageType.LICENSED
    )
    trial_days = models.PositiveSmallIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    stripe_price_id = models.CharField(max_length=255, blank=True, db_index=True)
    source = models.CharField(
        max_length=6,
        choices=Source.choices,
        default=Source.ADMIN,
        editable=False,
        help_text="Where the price is edited: our admin, or Stripe (synced from its Price).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["plan__tier_rank", "currency", "interval", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(unit_amount__isnull=True) | Q(unit_amount__gte=0),
                name="subscriptions_planprice_unit_amount_gte_0",
            ),
            models.CheckConstraint(
                condition=(
                    Q(billing_scheme="per_unit", unit_amount__isnull=False, tiers_mode="")
                    | (Q(billing_scheme="tiered") & ~Q(tiers_mode=""))
                ),
                name="subscriptions_planprice_scheme_complete",
            ),
            models.UniqueConstraint(
                fields=["stripe_price_id"],
                condition=~Q(stripe_price_id=""),
                name="subscriptions_planprice_unique_stripe_price",
            ),
        ]

    def __str__(self) -> str:
        return self.nickname or self.lookup_key

    def clean(self) -> None:
        """What makes a price complete, whoever writes it (the staff form, the catalog push):
        a per-unit price has an amount and no tiers, a tiered price has a tiers mode and valid
        tiers (`pricing.tiers_parse`) and no amount of its own. Normalises the currency to
        lowercase and the tiers to their stored shape. Raises ValidationError by field."""
        errors: dict[str, str] = {}
        try:
            self.currency = normalize_currency(self.currency)
        except MoneyError:
            errors["currency"] = "A three-letter ISO 4217 code, e.g. usd."
        if self.billing_scheme == self.BillingScheme.TIERED:
            if self.unit_amount is not None:
                errors["unit_amount"] = "A tiered price takes its amounts from the tiers."
            if not self.tiers_mode:
                errors["tiers_mode"] = "Choose graduated or volume."
            try:
                self.tiers = tiers_parse(self.tiers)
            except TiersError as exc:
                errors["tiers"] = str(exc)
        elif self.billing_scheme == self.BillingScheme.PER_UNIT:
            if self.unit_amount is None:
                errors["unit_amount"] = "A per-unit price needs an amount (minor units)."
            if self.tiers:
                errors["tiers"] = "Only tiered prices have tiers."
            else:
                self.tiers = []
            if self.tiers_mode:
                errors["tiers_mode"] = "Only tiered prices have a tiers mode."
        if errors:
            raise ValidationError(errors)
