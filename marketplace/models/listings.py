"""The services marketplace, first half: categories, providers and their listings with packages.

Prices are integer minor units + a lowercase ISO 4217 currency (``revenue_site.money``); the
platform commission is a ``Decimal`` percent per category, overridable per provider
(``Provider.commission_percent_override``). A provider is paid through the shared payout engine
as payee type ``provider`` (``ledger.models.PayeeProfile`` with ``payee_id`` = the provider's
pk); whether they may publish depends on that profile's onboarding
(``PayeeProfile.onboarding_complete``).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from revenue_site.model_checks import (
    PERCENT_VALIDATORS,
    currency_is_lowercase_iso,
    percent_between_0_and_100,
    validate_currency,
)

DEFAULT_COMMISSION_PERCENT = Decimal("15.00")


class Category(models.Model):
    """What kind of service a listing offers, and the platform's commission on it."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    commission_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=DEFAULT_COMMISSION_PERCENT,
        validators=PERCENT_VALIDATORS,
        help_text="The platform's share of an order in this category (%), unless the provider "
        "has an override.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        verbose_name_plural = "categories"
        constraints = [
            models.CheckConstraint(
                condition=percent_between_0_and_100("commission_percent"),
                name="marketplace_category_commission_0_100",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Provider(models.Model):
    """A user who sells services (a B2B seller). Paid through the shared payout engine as payee
    type ``provider`` (``ledger.models.PayeeProfile`` with ``payee_id`` = this row's pk)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="provider"
    )
    display_name = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    commission_percent_override = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=PERCENT_VALIDATORS,
        help_text="The platform's commission on this provider's orders (%) in every category; "
        "blank: the category's.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(commission_percent_override__isnull=True)
                | percent_between_0_and_100("commission_percent_override"),
                name="marketplace_provider_commission_0_100",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "suspended"]),
                name="marketplace_provider_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    def commission_percent_for(self, category: Category) -> Decimal:
        """The platform's commission (%) on this provider's orders in ``category``."""
        if self.commission_percent_override is not None:
            return self.commission_percent_override
        return category.commission_percent


class Listing(models.Model):
    """A service a provider offers, sold through its packages.

    draft → pending_review (provider submits; onboarding must be complete) → published (staff
    approve) ⇄ paused (provider or staff; one paused by staff is published again by staff
    only); staff reject back to draft with a reason; a provider's edit of a published or
    paused listing sends it back to review. Only published listings of active providers are
    in the public catalog. The transitions live in ``marketplace.listings``."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PENDING_REVIEW = "pending_review", "Pending review"
        PUBLISHED = "published", "Published"
        PAUSED = "paused", "Paused"

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="listings")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="listings")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    moderation_reason = models.TextField(
        blank=True, help_text="Why staff rejected or paused it (shown to the provider)."
    )
    paused_by_staff = models.BooleanField(
        default=False, help_text="Paused by staff: only staff can publish it again."
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-published_at", "-pk"]
        indexes = [
            # The public catalog: published listings, newest first, optionally by category or
            # provider.
            models.Index(fields=["status", "-published_at"], name="mkt_listing_catalog_idx"),
            models.Index(
                fields=["status", "category", "-published_at"], name="mkt_listing_category_idx"
            ),
            models.Index(
                fields=["provider", "status", "-published_at"], name="mkt_listing_provider_idx"
            ),
            # The staff moderation queue: oldest submission first.
            models.Index(fields=["status", "submitted_at"], name="mkt_listing_queue_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["draft", "pending_review", "published", "paused"]),
                name="marketplace_listing_status_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="published") | models.Q(published_at__isnull=False),
                name="marketplace_listing_published_has_date",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED


class ListingPackage(models.Model):
    """One way to buy a listing (e.g. basic / standard / premium): a price, a delivery time
    and how many revisions the buyer may ask for."""

    class Tier(models.TextChoices):
        BASIC = "basic", "Basic"
        STANDARD = "standard", "Standard"
        PREMIUM = "premium", "Premium"

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="packages")
    tier = models.CharField(max_length=10, choices=Tier.choices)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    price = models.BigIntegerField(help_text="Minor units of `currency`.")
    currency = models.CharField(max_length=3, validators=[validate_currency])
    delivery_days = models.PositiveIntegerField()
    revisions = models.PositiveSmallIntegerField(default=0)

    class Meta:
        # Cheapest first: the tiers go up in price in practice, and the price is what buyers
        # compare.
        ordering = ["listing", "price", "pk"]
        indexes = [
            # Price-range filters on the catalog.
            models.Index(fields=["currency", "price"], name="mkt_package_price_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["listing", "tier"], name="marketplace_package_tier_once"
            ),
            models.CheckConstraint(
                condition=models.Q(price__gte=0), name="marketplace_package_price_gte_0"
            ),
            models.CheckConstraint(
                condition=currency_is_lowercase_iso(), name="marketplace_package_currency_iso"
            ),
            models.CheckConstraint(
                condition=models.Q(delivery_days__gte=1),
                name="marketplace_package_delivery_days_gte_1",
            ),
            models.CheckConstraint(
                condition=models.Q(revisions__gte=0), name="marketplace_package_revisions_gte_0"
            ),
            models.CheckConstraint(
                condition=models.Q(tier__in=["basic", "standard", "premium"]),
                name="marketplace_package_tier_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.listing_id} {self.tier}: {self.name}"


class ListingReviewQueue(Listing):
    """The staff moderation queue (an admin of its own): listings pending review, oldest
    submission first."""

    class Meta:
        proxy = True
        verbose_name = "listing awaiting review"
        verbose_name_plural = "moderation queue"
