"""Listings of the services marketplace and their packages: the writes, and who may do what.

The listing's life (``Listing.Status``), each step with its actor::

    draft ──submit (provider)──▶ pending_review ──approve (staff)──▶ published
      ▲  ◀──withdraw (provider)──┘      │                           │  ▲
      └──────────reject (staff, reason)─┘            pause (provider │  │ resume (provider,
                                                     or staff+reason)▼  │ not if staff paused)
                                                                   paused
    published / paused ──edit (provider)──▶ pending_review (re-reviewed before it is back)

Submitting, resuming and approving need a provider who may sell: active, with payout
onboarding complete (``marketplace.providers.provider_can_sell_check``), and at least one
package. A step that does not apply to the listing's current status raises
``ListingStateError`` (409 with the status). Every step locks the listing row first, so two
concurrent steps apply one after the other against the state the first left.

Packages are set as a whole (``listing_packages_set``, or ``packages=`` of create/update): one
per tier, every one in the same currency, prices in minor units (0 up to Stripe's largest
charge), delivery in days (≥ 1) and a number of revisions (≥ 0). A tier left out is removed,
unless orders point at it (then ``ListingError``, 409).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from marketplace.models import Category, Listing, ListingPackage, Provider
from marketplace.providers import ProviderError, ProviderSuspended, provider_can_sell_check
from revenue_site.money import MoneyError, normalize_currency

# Stripe's largest charge amount (8 digits: $999,999.99 in a two-decimal currency).
PACKAGE_PRICE_MAX = 99_999_999
DELIVERY_DAYS_MAX = 365
REVISIONS_MAX = 100


class ListingError(ProviderError):
    """A listing request that conflicts with the listing's state or its orders (409)."""


class ListingStateError(ListingError):
    """The step does not apply to the listing's current status."""

    def __init__(self, listing: Listing, action: str):
        self.status = listing.status
        super().__init__(
            f"Cannot {action} a listing that is {listing.get_status_display().lower()} "
            f"(status: {listing.status}).",
            code="invalid_state",
        )


@dataclass(frozen=True)
class PackageInput:
    tier: str
    name: str
    price: int
    currency: str
    delivery_days: int
    revisions: int = 0
    description: str = ""


def _lock(listing: Listing) -> Listing:
    return Listing.objects.select_for_update().select_related("provider").get(pk=listing.pk)


def _clean_packages(packages: Sequence[PackageInput]) -> list[PackageInput]:
    """Normalised packages, or ``ValidationError`` on ``packages`` saying which and why."""
    errors: list[str] = []
    cleaned: list[PackageInput] = []
    tiers: set[str] = set()
    for index, package in enumerate(packages):
        where = f"Package {index + 1} ({package.tier})"
        if package.tier not in ListingPackage.Tier.values:
            errors.append(f"{where}: tier is one of {', '.join(ListingPackage.Tier.values)}.")
        elif package.tier in tiers:
            errors.append(f"{where}: one package per tier.")
        tiers.add(package.tier)
        name = " ".join(package.name.split())
        if not name or len(name) > 100:
            errors.append(f"{where}: a name of 1 to 100 characters.")
        if isinstance(package.price, bool) or not isinstance(package.price, int):
            errors.append(f"{where}: the price is a whole number of minor units.")
        elif not 0 <= package.price <= PACKAGE_PRICE_MAX:
            errors.append(f"{where}: the price is between 0 and {PACKAGE_PRICE_MAX} minor units.")
        try:
            currency = normalize_currency(package.currency)
        except MoneyError:
            errors.append(f"{where}: the currency is a three-letter ISO 4217 code, e.g. usd.")
            currency = package.currency
        if not 1 <= package.delivery_days <= DELIVERY_DAYS_MAX:
            errors.append(f"{where}: delivery takes 1 to {DELIVERY_DAYS_MAX} days.")
        if not 0 <= package.revisions <= REVISIONS_MAX:
            errors.append(f"{where}: 0 to {REVISIONS_MAX} revisions.")
        cleaned.append(
            PackageInput(
                tier=package.tier,
                name=name,
                price=package.price,
                currency=currency,
                delivery_days=package.delivery_days,
                revisions=package.revisions,
                description=package.description.strip(),
            )
        )
    if len({p.currency for p in cleaned}) > 1:
        errors.append("Every package of a listing is priced in the same currency.")
    if errors:
        raise ValidationError({"packages": errors})
    return cleaned


def _packages_replace(*, listing: Listing, packages: Sequence[PackageInput]) -> bool:
    """Make the listing's packages exactly ``packages`` (by tier); True when anything changed."""
    wanted = {p.tier: p for p in _clean_packages(packages)}
    existing = {p.tier: p for p in listing.packages.all()}
    changed = False
    gone = [p for tier, p in existing.items() if tier not in wanted]
    for package in gone:
        try:
            with transaction.atomic():
                package.delete()
        except ProtectedError as exc:
            raise ListingError(
                f"The {package.tier} package has orders and cannot be removed; change it instead.",
                code="package_has_orders",
            ) from exc
        changed = True
    for tier, data in wanted.items():
        values = {
            "name": data.name,
            "description": data.description,
            "price": data.price,
            "currency": data.currency,
            "delivery_days": data.delivery_days,
            "revisions": data.revisions,
        }
        current = existing.get(tier)
        if current is None:
            ListingPackage.objects.create(listing=listing, tier=tier, **values)
            changed = True
        elif any(getattr(current, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(current, key, value)
            current.save(update_fields=list(values))
            changed = True
    return changed


def _clean_title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise ValidationError({"title": ["Enter a title."]})
    if len(title) > 200:
        raise ValidationError({"title": ["At most 200 characters."]})
    return title


@transaction.atomic
def listing_create(
    *,
    provider: Provider,
    category: Category,
    title: str,
    description: str = "",
    packages: Sequence[PackageInput] = (),
) -> Listing:
    """A new draft listing with its packages. Raises ``ProviderSuspended``, or
    ``ValidationError`` naming the field."""
    if not provider.is_active:
        raise ProviderSuspended()
    listing = Listing.objects.create(
        provider=provider,
        category=category,
        title=_clean_title(title),
        description=description.strip(),
    )
    _packages_replace(listing=listing, packages=packages)
    return listing


@transaction.atomic
def listing_update(
    *,
    listing: Listing,
    title: str | None = None,
    description: str | None = None,
    category: Category | None = None,
    packages: Sequence[PackageInput] | None = None,
) -> Listing:
    """Edit a listing (``packages`` replaces them all). An edit of a published or paused
    listing sends it back to review (so the provider must be able to sell); a draft or a
    listing pending review keeps its status. Nothing changed: nothing happens."""
    listing = _lock(listing)
    if not listing.provider.is_active:
        raise ProviderSuspended()
    fields: list[str] = []
    if title is not None and _clean_title(title) != listing.title:
        listing.title = _clean_title(title)
        fields.append("title")
    if description is not None and description.strip() != listing.description:
        listing.description = description.strip()
        fields.append("description")
    if category is not None and category.pk != listing.category_id:
        listing.category = category
        fields.append("category")
    changed = bool(fields)
    if packages is not None:
        changed = _packages_replace(listing=listing, packages=packages) or changed
    if changed and listing.status in (Listing.Status.PUBLISHED, Listing.Status.PAUSED):
        provider_can_sell_check(provider=listing.provider)
        _packages_required(listing)
        listing.status = Listing.Status.PENDING_REVIEW
        listing.submitted_at = timezone.now()
        listing.paused_by_staff = False
        fields += ["status", "submitted_at", "paused_by_staff"]
    if changed:
        listing.save(update_fields=[*fields, "updated_at"])
    return listing


def _packages_required(listing: Listing) -> None:
    if not listing.packages.exists():
        raise ValidationError({"packages": ["Add at least one package first."]})


@transaction.atomic
def listing_delete(*, listing: Listing) -> None:
    """Delete a draft (with its packages). Raises ``ListingStateError`` for any other status,
    ``ListingError`` when orders point at its packages."""
    listing = _lock(listing)
    if listing.status != Listing.Status.DRAFT:
        raise ListingStateError(listing, "delete")
    try:
        with transaction.atomic():
            listing.delete()
    except ProtectedError as exc:
        raise ListingError(
            "This listing has orders and cannot be deleted.", code="listing_has_orders"
        ) from exc


# --- provider steps ------------------------------------------------------------------------


@transaction.atomic
def listing_submit(*, listing: Listing) -> Listing:
    """draft → pending_review. Raises ``ProviderSuspended`` / ``OnboardingIncomplete`` (the
    provider cannot sell yet), ``ValidationError`` without packages, ``ListingStateError``."""
    listing = _lock(listing)
    if listing.status != Listing.Status.DRAFT:
        raise ListingStateError(listing, "submit")
    provider_can_sell_check(provider=listing.provider)
    _packages_required(listing)
    listing.status = Listing.Status.PENDING_REVIEW
    listing.submitted_at = timezone.now()
    listing.save(update_fields=["status", "submitted_at", "updated_at"])
    return listing


@transaction.atomic
def listing_withdraw(*, listing: Listing) -> Listing:
    """pending_review → draft (the provider takes it back before review)."""
    listing = _lock(listing)
    if listing.status != Listing.Status.PENDING_REVIEW:
        raise ListingStateError(listing, "withdraw")
    listing.status = Listing.Status.DRAFT
    listing.submitted_at = None
    listing.save(update_fields=["status", "submitted_at", "updated_at"])
    return listing


@transaction.atomic
def listing_pause_set(*, listing: Listing, paused: bool) -> Listing:
    """The provider pauses (published → paused: off the catalog, orders in progress go on)
    or resumes (paused → published) their listing. A listing staff paused is not resumed by
    its provider (``ListingError`` ``paused_by_staff``: editing it sends it back to review);
    resuming needs a provider who can sell (``ProviderSuspended`` / ``OnboardingIncomplete``).
    Raises ``ListingStateError`` from any other state."""
    listing = _lock(listing)
    source, target = (
        (Listing.Status.PUBLISHED, Listing.Status.PAUSED)
        if paused
        else (Listing.Status.PAUSED, Listing.Status.PUBLISHED)
    )
    if listing.status != source:
        raise ListingStateError(listing, "pause" if paused else "resume")
    if not paused:
        if listing.paused_by_staff:
            raise ListingError(
                "Staff paused this listing; edit it to send it back to review.",
                code="paused_by_staff",
            )
        provider_can_sell_check(provider=listing.provider)
    listing.status = target
    listing.paused_by_staff = False
    listing.save(update_fields=["status", "paused_by_staff", "updated_at"])
    return listing


def listing_pause(*, listing: Listing) -> Listing:
    """published → paused by the provider (``listing_pause_set``)."""
    return listing_pause_set(listing=listing, paused=True)


def listing_resume(*, listing: Listing) -> Listing:
    """paused → published by the provider, unless staff paused it (``listing_pause_set``)."""
    return listing_pause_set(listing=listing, paused=False)


# --- staff steps ---------------------------------------------------------------------------


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": ["Say why: the provider sees it."]})
    return reason


@transaction.atomic
def listing_approve(*, listing: Listing) -> Listing:
    """pending_review (or paused by staff) → published; clears the moderation reason.
    Raises ``OnboardingIncomplete`` / ``ProviderSuspended`` as submitting does."""
    listing = _lock(listing)
    if listing.status != Listing.Status.PENDING_REVIEW and not (
        listing.status == Listing.Status.PAUSED and listing.paused_by_staff
    ):
        raise ListingStateError(listing, "approve")
    provider_can_sell_check(provider=listing.provider)
    _packages_required(listing)
    listing.status = Listing.Status.PUBLISHED
    listing.published_at = listing.published_at or timezone.now()
    listing.moderation_reason = ""
    listing.paused_by_staff = False
    listing.save(
        update_fields=[
            "status",
            "published_at",
            "moderation_reason",
            "paused_by_staff",
            "updated_at",
        ]
    )
    return listing


@transaction.atomic
def listing_reject(*, listing: Listing, reason: str) -> Listing:
    """pending_review → draft with the reason shown to the provider."""
    reason = _reason(reason)
    listing = _lock(listing)
    if listing.status != Listing.Status.PENDING_REVIEW:
        raise ListingStateError(listing, "reject")
    listing.status = Listing.Status.DRAFT
    listing.moderation_reason = reason
    listing.submitted_at = None
    listing.save(update_fields=["status", "moderation_reason", "submitted_at", "updated_at"])
    return listing


@transaction.atomic
def listing_staff_pause(*, listing: Listing, reason: str) -> Listing:
    """published → paused by staff, with the reason; the provider cannot resume it (an edit
    sends it back to review, or staff approve it again)."""
    reason = _reason(reason)
    listing = _lock(listing)
    if listing.status != Listing.Status.PUBLISHED:
        raise ListingStateError(listing, "pause")
    listing.status = Listing.Status.PAUSED
    listing.paused_by_staff = True
    listing.moderation_reason = reason
    listing.save(update_fields=["status", "paused_by_staff", "moderation_reason", "updated_at"])
    return listing
