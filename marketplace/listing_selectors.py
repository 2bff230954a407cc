"""Reads of the services marketplace's providers, categories and listings.

Each selector decides its joins and prefetches, so the APIs and the staff console make a fixed
number of queries however many rows they list.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery

from accounts.models import User
from ledger.models import PayeeProfile
from marketplace.models import Category, Listing, ListingPackage, Provider
from marketplace.providers import PAYEE_TYPE


def _with_packages(listings: QuerySet[Listing]) -> QuerySet[Listing]:
    return listings.select_related("provider", "category").prefetch_related(
        Prefetch("packages", queryset=ListingPackage.objects.order_by("price", "pk"))
    )


def category_list() -> QuerySet[Category]:
    return Category.objects.order_by("name", "pk")


def category_get(*, category_id: int) -> Category:
    return Category.objects.get(pk=category_id)


def provider_for_user(*, user: User) -> Provider | None:
    if not user.is_authenticated:
        return None
    return Provider.objects.select_related("user").filter(user=user).first()


# --- the public catalog --------------------------------------------------------------------


def catalog_listing_list(
    *,
    category_id: int | None = None,
    category_slug: str | None = None,
    provider_id: int | None = None,
    price_min: int | None = None,
    price_max: int | None = None,
    currency: str | None = None,
    search: str | None = None,
) -> QuerySet[Listing]:
    """Published listings of active providers, newest first, with their packages.

    ``price_min`` / ``price_max`` (minor units) and ``currency`` match listings with at least
    one package in that range (and currency); ``search`` looks in the title, the description
    and the provider's name."""
    listings = Listing.objects.filter(
        status=Listing.Status.PUBLISHED, provider__status=Provider.Status.ACTIVE
    )
    if category_id is not None:
        listings = listings.filter(category_id=category_id)
    if category_slug:
        listings = listings.filter(category__slug=category_slug)
    if provider_id is not None:
        listings = listings.filter(provider_id=provider_id)
    if price_min is not None or price_max is not None or currency:
        packages = ListingPackage.objects.filter(listing=OuterRef("pk"))
        if price_min is not None:
            packages = packages.filter(price__gte=price_min)
        if price_max is not None:
            packages = packages.filter(price__lte=price_max)
        if currency:
            packages = packages.filter(currency=currency)
        listings = listings.filter(Exists(packages))
    if search:
        words = search.split()[:8]
        for word in words:
            listings = listings.filter(
                Q(title__icontains=word)
                | Q(description__icontains=word)
                | Q(provider__display_name__icontains=word)
            )
    return _with_packages(listings).order_by("-published_at", "-pk")


def catalog_listing_get(*, listing_id: int) -> Listing:
    """One published listing of an active provider (``Listing.DoesNotExist`` otherwise)."""
    return catalog_listing_list().get(pk=listing_id)


# --- a provider's own listings -------------------------------------------------------------


def provider_listing_list(*, provider: Provider, status: str | None = None) -> QuerySet[Listing]:
    listings = Listing.objects.filter(provider=provider)
    if status:
        listings = listings.filter(status=status)
    return _with_packages(listings).order_by("-created_at", "-pk")


def provider_listing_get(*, provider: Provider, listing_id: int) -> Listing:
    """The provider's listing (``Listing.DoesNotExist`` for another provider's: a 404)."""
    return provider_listing_list(provider=provider).get(pk=listing_id)


# --- staff ---------------------------------------------------------------------------------


def _profile(field: str) -> Subquery:
    return Subquery(
        PayeeProfile.objects.filter(payee_type=PAYEE_TYPE, payee_id=OuterRef("pk")).values(field)[
            :1
        ]
    )


def provider_list_for_admin() -> QuerySet[Provider]:
    """Providers with their payout profile annotated (``payout_method``, ``stripe_account``,
    ``charges_enabled``, ``payouts_enabled``, ``onboarding_complete``): one query for the
    changelist, filterable on ``onboarding_complete``."""
    complete = PayeeProfile.objects.filter(
        PayeeProfile.onboarding_complete_q(), payee_type=PAYEE_TYPE, payee_id=OuterRef("pk")
    )
    return Provider.objects.select_related("user").annotate(
        payout_method=_profile("method"),
        stripe_account=_profile("stripe_account_id"),
        charges_enabled=_profile("stripe_charges_enabled"),
        payouts_enabled=_profile("stripe_payouts_enabled"),
        onboarding_complete=Exists(complete),
    )


def listing_list_for_admin() -> QuerySet[Listing]:
    return Listing.objects.select_related("provider", "provider__user", "category")


def listing_review_queue() -> QuerySet[Listing]:
    """Listings pending review, oldest submission first, with their packages."""
    return (
        listing_list_for_admin()
        .filter(status=Listing.Status.PENDING_REVIEW)
        .prefetch_related(Prefetch("packages", queryset=ListingPackage.objects.order_by("price")))
        .order_by("submitted_at", "pk")
    )


def category_list_for_admin() -> QuerySet[Category]:
    return Category.objects.all()
