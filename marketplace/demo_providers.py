"""Demo services marketplace: categories, providers and their listings in every state.

Runs after the API billing demo (ORDER 40) and before the orders demo:

- Nora (Northwind Studio) is paid through Stripe Connect: an Express account created through
  the service, its onboarding completed on the local fake Stripe (its
  ``/_config/accounts/<id>/onboard``, what pressing the button on its hosted page does), and
  the account read back;
- Oscar (Oak & Code) is paid by bank transfer (CSV payouts);
- Pia (Pixel Pia) signed up but has not set up payouts: her listing stays a draft.

Listings go through the services (create, submit, approve / reject / pause), so they end in
every state: published, pending review, paused by the provider, paused by staff, rejected to
draft, draft. Idempotent: users, providers, categories and listings are found by their email,
slug or title; an existing listing is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from django.conf import settings

from accounts.models import User
from marketplace import listings, providers
from marketplace.listings import PackageInput
from marketplace.models import Category, Listing, Provider
from revenue_site.demo import demo_connect_onboard

ORDER = 45

CATEGORIES = [
    # slug, name, commission %
    ("design", "Design", Decimal("15.00")),
    ("development", "Software development", Decimal("12.00")),
    ("writing", "Writing", Decimal("20.00")),
    ("marketing", "Marketing", Decimal("18.00")),
]


def _packages(currency: str, base: int, days: int) -> list[PackageInput]:
    return [
        PackageInput("basic", "Basic", base, currency, days, 1, "The essentials."),
        PackageInput("standard", "Standard", base * 2, currency, days + 2, 2, "More of it."),
        PackageInput("premium", "Premium", base * 4, currency, days + 5, 5, "Everything."),
    ]


# provider email -> [(title, category slug, packages, final state)]
LISTINGS: dict[str, list[tuple[str, str, list[PackageInput], str]]] = {
    "nora@providers.demo.example": [
        ("Logo design", "design", _packages("usd", 15000, 3), "published"),
        ("Brand guidelines", "design", _packages("usd", 40000, 7), "pending_review"),
        ("Landing page copy", "writing", _packages("usd", 8000, 2), "paused"),
        ("Illustration set", "design", _packages("usd", 25000, 10), "draft"),
    ],
    "oscar@providers.demo.example": [
        ("Django API development", "development", _packages("eur", 60000, 14), "published"),
        ("Code review", "development", _packages("eur", 12000, 2), "paused_by_staff"),
        ("SEO audit", "marketing", _packages("eur", 30000, 5), "rejected"),
    ],
    "pia@providers.demo.example": [
        ("Social media kit", "marketing", _packages("gbp", 9000, 4), "draft"),
    ],
}
PROVIDERS = [
    # email, user name, display name
    ("nora@providers.demo.example", "Nora Northwind", "Northwind Studio"),
    ("oscar@providers.demo.example", "Oscar Oak", "Oak & Code"),
    ("pia@providers.demo.example", "Pia Pixel", "Pixel Pia"),
]


def _provider(email: str, name: str, display_name: str) -> Provider:
    user, created = User.objects.get_or_create(email=email, defaults={"name": name})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    provider = Provider.objects.filter(user=user).first()
    return provider or providers.provider_create(user=user, display_name=display_name)


def _connect(provider: Provider, out: Callable[[str], None]) -> None:
    if providers.provider_onboarding_complete(provider=provider):
        return
    site = settings.SITE_URL + "/"
    link = providers.provider_connect_onboarding_start(
        provider=provider, return_url=site, refresh_url=site
    )
    profile = providers.provider_payee_profile(provider=provider)
    if profile is not None and demo_connect_onboard(profile.stripe_account_id):
        providers.provider_connect_refresh(provider=provider)
    else:
        out(f"  {provider}: finish Stripe onboarding at {link['url']}")


def _listing(
    provider: Provider,
    title: str,
    category: Category,
    packages: list[PackageInput],
    state: str,
) -> Listing:
    existing = Listing.objects.filter(provider=provider, title=title).first()
    if existing is not None:
        return existing
    listing = listings.listing_create(
        provider=provider,
        category=category,
        title=title,
        description=f"{title} by {provider.display_name}: {', '.join(p.name for p in packages)}.",
        packages=packages,
    )
    if state == "draft":
        return listing
    listing = listings.listing_submit(listing=listing)
    if state == "rejected":
        return listings.listing_reject(
            listing=listing, reason="Say what the audit covers and what the client receives."
        )
    if state == "pending_review":
        return listing
    listing = listings.listing_approve(listing=listing)
    if state == "paused":
        return listings.listing_pause(listing=listing)
    if state == "paused_by_staff":
        return listings.listing_staff_pause(
            listing=listing, reason="Reported by a buyer: the samples are not the provider's own."
        )
    return listing


def seed(*, out: Callable[[str], None]) -> None:
    categories = {}
    for slug, name, commission in CATEGORIES:
        categories[slug], _ = Category.objects.get_or_create(
            slug=slug, defaults={"name": name, "commission_percent": commission}
        )
    made = {}
    for email, name, display_name in PROVIDERS:
        made[email] = _provider(email, name, display_name)
    _connect(made["nora@providers.demo.example"], out)
    oscar = made["oscar@providers.demo.example"]
    if not providers.provider_onboarding_complete(provider=oscar):
        providers.provider_bank_details_set(
            provider=oscar, account_name="Oak & Code Ltd", iban="DE89370400440532013000"
        )
    for email, rows in LISTINGS.items():
        provider = made[email]
        for title, slug, packages, state in rows:
            if state != "draft" and not providers.provider_onboarding_complete(provider=provider):
                state = "draft"  # not payable yet (real Stripe test account): stays a draft
            _listing(provider, title, categories[slug], packages, state)
    counts = {
        status: Listing.objects.filter(status=status).count() for status in Listing.Status.values
    }
    out(
        f"  services marketplace: {len(categories)} categories, {len(made)} providers "
        f"(Connect, bank, none), listings {counts}"
    )
