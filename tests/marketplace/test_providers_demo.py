"""The services marketplace demo: providers on Connect (onboarded through the fake), on bank
transfer and without payouts; listings in every state; idempotent."""

from __future__ import annotations

import pytest

from marketplace import demo_providers
from marketplace.models import Category, Listing, ListingPackage, Provider
from marketplace.providers import provider_onboarding_complete, provider_payee_profile
from revenue_site.demo import demo_modules

pytestmark = pytest.mark.django_db


def test_the_demo_seeds_providers_and_listings_in_every_state_once(stripe_fake):
    lines: list[str] = []
    demo_providers.seed(out=lines.append)
    first = (Provider.objects.count(), Listing.objects.count(), ListingPackage.objects.count())
    demo_providers.seed(out=lines.append)

    assert (Provider.objects.count(), Listing.objects.count()) == first[:2] == (3, 8)
    assert ListingPackage.objects.count() == first[2] == 24
    assert Category.objects.count() == 4
    assert set(Listing.objects.values_list("status", flat=True)) == set(Listing.Status.values)
    assert Listing.objects.filter(paused_by_staff=True).count() == 1
    assert Listing.objects.filter(status="draft").exclude(moderation_reason="").count() == 1

    nora = Provider.objects.get(user__email="nora@providers.demo.example")
    profile = provider_payee_profile(provider=nora)
    assert profile.method == "stripe_connect"
    assert profile.stripe_account_id.startswith("acct_")
    assert (profile.stripe_payouts_enabled, profile.onboarding_complete) == (True, True)
    oscar = Provider.objects.get(user__email="oscar@providers.demo.example")
    assert provider_payee_profile(provider=oscar).method == "bank_csv"
    assert provider_onboarding_complete(provider=oscar)
    pia = Provider.objects.get(user__email="pia@providers.demo.example")
    assert not provider_onboarding_complete(provider=pia)
    assert set(pia.listings.values_list("status", flat=True)) == {"draft"}
    assert any("services marketplace" in line for line in lines)


def test_the_demo_runs_after_api_billing():
    names = [m.__name__ for m in demo_modules()]
    assert names.index("marketplace.demo") < names.index("marketplace.demo_providers")
