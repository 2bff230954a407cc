"""Content monetization: creators, content items, co-creator shares, licence types, licences
and their usage.

Prices are integer minor units + a lowercase ISO 4217 currency (``revenue_site.money``); rates
(platform fee, shares) are ``Decimal``. A licence's key is never stored: only a visible prefix
and a keyed HMAC of the whole key (``content.services.license_key_hash``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from revenue_site.model_checks import (
    PERCENT_VALIDATORS,
    currency_is_lowercase_iso,
    percent_between_0_and_100,
    validate_currency,
)

LIMIT_KEYS = ("downloads", "views", "api_calls", "seats")


def default_platform_fee_percent() -> Decimal:
    return Decimal(str(settings.CONTENT_PLATFORM_FEE_PERCENT))


def validate_limits(value: Any) -> None:
    """{downloads?, views?, api_calls?, seats?}: each a non-negative integer (absent: unlimited)."""
    if not isinstance(value, dict):
        raise ValidationError("An object of {downloads, views, api_calls, seats}.")
    unknown = sorted(set(value) - set(LIMIT_KEYS))
    if unknown:
        raise ValidationError(
            f"Unknown limits: {', '.join(unknown)} (use {', '.join(LIMIT_KEYS)})."
        )
    for key, limit in value.items():
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValidationError(f"{key}: a non-negative whole number.")


class Creator(models.Model):
    """A user who sells content. Paid through the shared payout engine as payee type
    ``creator`` (``ledger.models.PayeeProfile`` with ``payee_id`` = this row's pk)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="creator"
    )
    display_name = models.CharField(max_length=100)
    platform_fee_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=default_platform_fee_percent,
        validators=PERCENT_VALIDATORS,
        help_text="The platform's share of this creator's sales (%), unless an item overrides it.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["display_name", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=percent_between_0_and_100("platform_fee_percent"),
                name="content_creator_fee_0_100",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "suspended"]),
                name="content_creator_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class ContentItem(models.Model):
    class Kind(models.TextChoices):
        ARTICLE = "article", "Article"
        VIDEO = "video", "Video"
        IMAGE = "image", "Image"
        DATASET = "dataset", "Dataset"
        SOFTWARE = "software", "Software"
        AUDIO = "audio", "Audio"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        ARCHIVED = "archived", "Archived"

    owner = models.ForeignKey(Creator, on_delete=models.PROTECT, related_name="items")
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    platform_fee_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=PERCENT_VALIDATORS,
        help_text="Overrides the creator's platform fee for this item; blank: the creator's.",
    )
    moderation_note = models.TextField(
        blank=True, help_text="Why staff unpublished or archived it (shown to the creator)."
    )
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-published_at", "-pk"]
        indexes = [
            # The catalog: published items, newest first, optionally by kind or creator.
            models.Index(fields=["status", "-published_at"], name="content_item_catalog_idx"),
            models.Index(fields=["status", "kind", "-published_at"], name="content_item_kind_idx"),
            models.Index(
                fields=["owner", "status", "-published_at"], name="content_item_owner_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(platform_fee_percent__isnull=True)
                | percent_between_0_and_100("platform_fee_percent"),
                name="content_item_fee_0_100",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="published") | models.Q(published_at__isnull=False),
                name="content_item_published_has_date",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    kind__in=["article", "video", "image", "dataset", "software", "audio"]
                ),
                name="content_item_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def effective_platform_fee_percent(self) -> Decimal:
        """This item's override, else its owner's fee (reads ``owner``: select_related it)."""
        if self.platform_fee_percent is not None:
            return self.platform_fee_percent
        return self.owner.platform_fee_percent


class ContentShare(models.Model):
    """A creator's share (%) of an item's revenue. An item's shares total exactly 100 and
    include its owner (``content.services.content_shares_set``); no rows: 100 % owner."""

    item = models.ForeignKey(ContentItem, on_delete=models.CASCADE, related_name="shares")
    creator = models.ForeignKey(Creator, on_delete=models.PROTECT, related_name="shares")
    percent = models.DecimalField(max_digits=7, decimal_places=4)

    class Meta:
        ordering = ["item", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["item", "creator"], name="content_share_once"),
            models.CheckConstraint(
                condition=models.Q(percent__gt=0, percent__lte=100),
                name="content_share_percent_0_100",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.creator_id}: {self.percent}% of {self.item_id}"


class LicenseType(models.Model):
    """What a buyer can buy for an item: a kind, a price, a term, limits and an overage rule."""

    class Kind(models.TextChoices):
        PERSONAL = "personal", "Personal"
        COMMERCIAL = "commercial", "Commercial"
        EDITORIAL = "editorial", "Editorial"
        EXCLUSIVE = "exclusive", "Exclusive (one active holder at a time)"
        USAGE_ROYALTY = "usage_royalty", "Usage royalty"

    class Pricing(models.TextChoices):
        ONE_TIME = "one_time", "One-time"
        RECURRING = "recurring", "Recurring (a Stripe Price)"
        PER_USE = "per_use", "Per use (rated by the metering engine)"

    class Overage(models.TextChoices):
        BLOCK = "block", "Block at the limit"
        ALLOW_125 = "allow_125", "Allow up to 1.25x and bill the excess"
        ALLOW_150 = "allow_150", "Allow up to 1.5x and bill the excess"
        ALLOW_200 = "allow_200", "Allow up to 2x and bill the excess"

    class Interval(models.TextChoices):
        MONTH = "month", "Monthly"
        YEAR = "year", "Yearly"

    OVERAGE_FACTORS = {
        Overage.BLOCK: Decimal(1),
        Overage.ALLOW_125: Decimal("1.25"),
        Overage.ALLOW_150: Decimal("1.5"),
        Overage.ALLOW_200: Decimal(2),
    }

    item = models.ForeignKey(ContentItem, on_delete=models.PROTECT, related_name="license_types")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    pricing = models.CharField(max_length=10, choices=Pricing.choices, default=Pricing.ONE_TIME)
    amount = models.BigIntegerField(
        default=0, help_text="Minor units: the one-time or recurring price (0 for per-use)."
    )
    currency = models.CharField(max_length=3, validators=[validate_currency])
    stripe_price_id = models.CharField(
        max_length=255, blank=True, help_text="Recurring: the Stripe Price billed."
    )
    recurring_interval = models.CharField(
        max_length=5,
        choices=Interval.choices,
        default=Interval.MONTH,
        help_text="Recurring: billed every month or every year.",
    )
    per_use_unit_amount = models.DecimalField(
        max_digits=19,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Minor units per use (fractions allowed): the per-use price, and the rate "
        "overage is billed at.",
    )
    term_days = models.PositiveIntegerField(null=True, blank=True, help_text="Blank: perpetual.")
    limits = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_limits],
        help_text='Absent: unlimited. E.g. {"downloads": 10, "seats": 3}.',
    )
    overage = models.CharField(max_length=10, choices=Overage.choices, default=Overage.BLOCK)
    is_active = models.BooleanField(default=True, help_text="Inactive: no longer sold.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item", "pk"]
        indexes = [models.Index(fields=["item", "is_active"], name="content_lt_item_active_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gte=0), name="content_licensetype_amount_gte_0"
            ),
            models.CheckConstraint(
                condition=models.Q(per_use_unit_amount__isnull=True)
                | models.Q(per_use_unit_amount__gte=0),
                name="content_licensetype_per_use_gte_0",
            ),
            models.CheckConstraint(
                condition=models.Q(term_days__isnull=True) | models.Q(term_days__gt=0),
                name="content_licensetype_term_gt_0",
            ),
            models.CheckConstraint(
                condition=currency_is_lowercase_iso(), name="content_licensetype_currency_iso"
            ),
            models.CheckConstraint(
                condition=~models.Q(pricing="per_use")
                | models.Q(per_use_unit_amount__gt=0, amount=0),
                name="content_licensetype_per_use_has_rate",
            ),
            models.CheckConstraint(
                condition=models.Q(pricing="per_use") | models.Q(amount__gt=0),
                name="content_licensetype_priced",
            ),
            models.CheckConstraint(
                condition=models.Q(overage="block") | models.Q(per_use_unit_amount__gt=0),
                name="content_licensetype_overage_has_rate",
            ),
            models.CheckConstraint(
                condition=models.Q(recurring_interval__in=["month", "year"]),
                name="content_licensetype_interval_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} licence for {self.item_id}"

    @property
    def overage_factor(self) -> Decimal:
        """How far past a limit use is allowed: 1 (block), 1.25, 1.5 or 2."""
        return self.OVERAGE_FACTORS[self.Overage(self.overage)]

    @property
    def is_perpetual(self) -> bool:
        return self.term_days is None

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.currency:
            try:
                validate_currency(self.currency)
            except ValidationError as exc:
                errors["currency"] = exc.messages
        if self.amount is not None and self.amount < 0:
            errors.setdefault("amount", []).append("Must be zero or more.")
        if self.per_use_unit_amount is not None and self.per_use_unit_amount < 0:
            errors.setdefault("per_use_unit_amount", []).append("Must be zero or more.")
        if self.pricing == self.Pricing.PER_USE:
            if not self.per_use_unit_amount:
                errors.setdefault("per_use_unit_amount", []).append(
                    "A per-use price needs a rate per use."
                )
            if self.amount:
                errors.setdefault("amount", []).append("A per-use price has no fixed amount.")
        elif not self.amount or self.amount <= 0:
            errors.setdefault("amount", []).append("A one-time or recurring price is above 0.")
        if self.pricing != self.Pricing.RECURRING and self.stripe_price_id:
            errors.setdefault("stripe_price_id", []).append("Only a recurring price has one.")
        if self.term_days is not None and self.term_days <= 0:
            errors.setdefault("term_days", []).append("At least 1 day (blank: perpetual).")
        if self.pricing == self.Pricing.RECURRING and self.term_days is not None:
            errors.setdefault("term_days", []).append(
                "A recurring licence lasts while it is paid: leave the term blank."
            )
        if self.kind == self.Kind.USAGE_ROYALTY and self.pricing != self.Pricing.PER_USE:
            errors.setdefault("pricing", []).append("A usage royalty is priced per use.")
        if self.kind == self.Kind.EXCLUSIVE and self.pricing == self.Pricing.PER_USE:
            errors.setdefault("pricing", []).append("An exclusive licence has a fixed price.")
        if self.overage != self.Overage.BLOCK:
            if not self.per_use_unit_amount:
                errors.setdefault("per_use_unit_amount", []).append(
                    "Overage is billed at the per-use rate: set it, or block at the limit."
                )
            if not self.limits:
                errors.setdefault("overage", []).append("Overage needs a limit to go over.")
        try:
            validate_limits(self.limits)
        except ValidationError as exc:
            errors.setdefault("limits", []).extend(exc.messages)
        if errors:
            raise ValidationError(errors)


class License(models.Model):
    """A buyer's licence to an item, issued by the purchase flow. The key is shown to the
    buyer once; we keep its visible ``key_prefix`` and a keyed HMAC (``key_hash``)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending payment"
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"
        SUSPENDED = "suspended", "Suspended"

    class SuspendedBy(models.TextChoices):
        STAFF = "staff", "Staff"
        DISPUTE = "dispute", "A payment dispute"

    license_type = models.ForeignKey(LicenseType, on_delete=models.PROTECT, related_name="licenses")
    content = models.ForeignKey(
        ContentItem,
        on_delete=models.PROTECT,
        related_name="licenses",
        help_text="A copy of license_type.item, for lookups and the exclusivity constraint.",
    )
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="content_licenses"
    )
    key_prefix = models.CharField(max_length=32, unique=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    suspended_by = models.CharField(
        max_length=10,
        choices=SuspendedBy.choices,
        blank=True,
        help_text="Who suspended it, while it is suspended: a won dispute lifts only its own.",
    )
    exclusive = models.BooleanField(
        default=False, help_text="A copy of license_type.kind == exclusive."
    )
    issued_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Blank: perpetual.")
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True)
    stripe_subscription_id = models.CharField(
        max_length=255, blank=True, help_text="Recurring: the Stripe Subscription that pays it."
    )
    paid_through = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Recurring: the end of the last period paid for (expiry after a cancellation).",
    )
    amount = models.BigIntegerField(
        help_text="Minor units paid (net of tax); recurring: per period; per use: 0."
    )
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["holder", "-created_at"], name="content_license_holder_idx"),
            models.Index(fields=["content", "status"], name="content_license_content_idx"),
            models.Index(fields=["status", "expires_at"], name="content_license_expiry_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["content"],
                condition=models.Q(exclusive=True, status="active"),
                name="content_license_one_active_exclusive",
            ),
            models.UniqueConstraint(
                fields=["stripe_payment_intent_id"],
                condition=~models.Q(stripe_payment_intent_id=""),
                name="content_license_payment_intent_once",
            ),
            models.UniqueConstraint(
                fields=["stripe_subscription_id"],
                condition=~models.Q(stripe_subscription_id=""),
                name="content_license_subscription_once",
            ),
            models.CheckConstraint(
                condition=models.Q(amount__gte=0), name="content_license_amount_gte_0"
            ),
            models.CheckConstraint(
                condition=currency_is_lowercase_iso(), name="content_license_currency_iso"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["pending", "active", "expired", "revoked", "suspended"]
                ),
                name="content_license_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key_prefix}… ({self.status})"


class LicenseUsage(models.Model):
    """One reported use of a licence (idempotent on the caller's ``event_id`` per licence).
    ``denied`` rows record refused attempts and do not count against the limits."""

    class Event(models.TextChoices):
        VIEW = "view", "View"
        DOWNLOAD = "download", "Download"
        API_CALL = "api_call", "API call"

    license = models.ForeignKey(License, on_delete=models.PROTECT, related_name="usages")
    event = models.CharField(max_length=10, choices=Event.choices)
    quantity = models.PositiveIntegerField(default=1)
    event_id = models.CharField(max_length=255)
    denied = models.BooleanField(default=False)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["license", "event", "denied"], name="content_usage_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["license", "event_id"], name="content_usage_event_once"
            ),
            models.CheckConstraint(
                condition=models.Q(quantity__gt=0), name="content_usage_quantity_gt_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} x{self.quantity} on {self.license_id}"


# Each usage event and the limit (``LicenseType.limits`` key) it counts against.
LIMIT_FOR_EVENT = {
    LicenseUsage.Event.VIEW: "views",
    LicenseUsage.Event.DOWNLOAD: "downloads",
    LicenseUsage.Event.API_CALL: "api_calls",
}
