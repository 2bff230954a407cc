"""Listings through the provider API and the public catalog: nested packages, the steps and
who may take them, publish gating on payout onboarding, isolation, catalog filters, query
counts and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from ledger.models import PayeeProfile
from marketplace import listings
from marketplace.models import Listing, ListingPackage, Provider
from tests.accounts.factories import UserFactory
from tests.marketplace.factories import (
    CategoryFactory,
    ListingFactory,
    ListingPackageFactory,
    ProviderFactory,
)

pytestmark = pytest.mark.django_db

MINE = "/api/v1/provider/listings/"
CATALOG = "/api/v1/marketplace/listings/"


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def mine(listing: Listing | int) -> str:
    return f"{MINE}{listing if isinstance(listing, int) else listing.pk}/"


def package(tier: str = "basic", price: int = 5000, currency: str = "usd", **extra: Any) -> dict:
    return {
        "tier": tier,
        "name": tier.capitalize(),
        "price": price,
        "currency": currency,
        "delivery_days": 3,
        "revisions": 1,
        **extra,
    }


def new_listing(client: APIClient, category: Any, **extra: Any) -> dict:
    body = {
        "category": category.pk,
        "title": "Logo design",
        "description": "Three concepts.",
        "packages": [package("basic", 5000), package("premium", 20000)],
        **extra,
    }
    response = client.post(MINE, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def approve(listing_id: int) -> Listing:
    return listings.listing_approve(listing=Listing.objects.get(pk=listing_id))


# --- provider CRUD -------------------------------------------------------------------------


def test_a_provider_creates_reads_edits_and_deletes_a_draft_with_nested_packages():
    provider = ProviderFactory()
    category = CategoryFactory()
    client = client_for(provider.user)

    created = new_listing(client, category)
    assert created["status"] == "draft"
    assert created["category"] == {"id": category.pk, "name": category.name, "slug": category.slug}
    assert [(p["tier"], p["price"]) for p in created["packages"]] == [
        ("basic", 5000),
        ("premium", 20000),
    ]

    edited = client.patch(
        mine(created["id"]),
        {"title": "Logo & icon", "packages": [package("basic", 6000), package("standard", 9000)]},
        format="json",
    )
    assert edited.status_code == 200, edited.content
    body = edited.json()
    assert body["title"] == "Logo & icon"
    assert [(p["tier"], p["price"]) for p in body["packages"]] == [
        ("basic", 6000),
        ("standard", 9000),
    ]
    # The basic package was updated in place, not replaced.
    assert body["packages"][0]["id"] == created["packages"][0]["id"]
    assert not ListingPackage.objects.filter(listing_id=created["id"], tier="premium").exists()

    listed = client.get(MINE).json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == created["id"]
    assert client.get(MINE, {"status": "published"}).json()["count"] == 0

    assert client.delete(mine(created["id"])).status_code == 204
    assert not Listing.objects.filter(pk=created["id"]).exists()
    assert not ListingPackage.objects.filter(listing_id=created["id"]).exists()


@pytest.mark.parametrize(
    ("packages", "message"),
    [
        ([package("basic"), package("basic")], "one package per tier"),
        ([package("basic", currency="usd"), package("premium", currency="eur")], "same currency"),
        ([package("gold")], "tier"),
        ([package("basic", price=-1)], "price"),
        ([package("basic", price=100_000_000)], "price"),
        ([package("basic", delivery_days=0)], "delivery_days"),
        ([package("basic", revisions=-1)], "revisions"),
        ([package("basic", currency="dollars")], "currency"),
        ([package("basic", currency="")], "currency"),  # schemathesis: the schema allowed it
        ([package("basic", currency="US$")], "currency"),
    ],
)
def test_invalid_packages_are_400_naming_them(packages, message):
    provider = ProviderFactory()
    response = client_for(provider.user).post(
        MINE,
        {"category": CategoryFactory().pk, "title": "X", "packages": packages},
        format="json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "packages" in error["fields"]
    assert message in str(error["fields"]["packages"])
    assert not Listing.objects.exists()


def test_an_unknown_category_or_a_blank_title_is_400():
    client = client_for(ProviderFactory().user)
    unknown = client.post(MINE, {"category": 999_999, "title": "X"}, format="json")
    assert unknown.status_code == 400
    assert "category" in unknown.json()["error"]["fields"]
    blank = client.post(MINE, {"category": CategoryFactory().pk, "title": "  "}, format="json")
    assert blank.status_code == 400
    assert "title" in blank.json()["error"]["fields"]


def test_a_non_provider_gets_403_and_an_anonymous_caller_401():
    assert client_for(UserFactory(password=None)).get(MINE).status_code == 403
    assert APIClient().get(MINE).status_code == 401
    assert APIClient().post(f"{MINE}1/submit").status_code == 401


def test_another_providers_listing_is_404_for_every_verb():
    theirs = ListingFactory(status=Listing.Status.DRAFT)
    client = client_for(ProviderFactory().user)
    assert client.get(mine(theirs)).status_code == 404
    assert client.patch(mine(theirs), {"title": "Mine now"}, format="json").status_code == 404
    assert client.delete(mine(theirs)).status_code == 404
    for step in ("submit", "withdraw", "pause", "resume"):
        assert client.post(f"{mine(theirs)}{step}").status_code == 404
    theirs.refresh_from_db()
    assert (theirs.title, theirs.status) != ("Mine now", Listing.Status.PENDING_REVIEW)
    assert client.get(MINE).json()["count"] == 0


# --- steps and gating ----------------------------------------------------------------------


def test_submit_needs_payout_onboarding_then_staff_publish_it():
    provider = ProviderFactory(onboarded=False)
    client = client_for(provider.user)
    listing = new_listing(client, CategoryFactory())

    refused = client.post(f"{mine(listing['id'])}submit")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "onboarding_incomplete"
    assert "onboarding" in error["message"]
    assert Listing.objects.get(pk=listing["id"]).status == Listing.Status.DRAFT

    # Connect started but payouts not enabled yet: still not complete.
    PayeeProfile.objects.create(
        payee_type="provider",
        payee_id=provider.pk,
        method=PayeeProfile.Method.STRIPE_CONNECT,
        stripe_account_id="acct_pending000001",
        stripe_details_submitted=True,
    )
    assert client.post(f"{mine(listing['id'])}submit").status_code == 409
    PayeeProfile.objects.filter(payee_id=provider.pk).update(stripe_payouts_enabled=True)

    submitted = client.post(f"{mine(listing['id'])}submit")
    assert submitted.status_code == 200, submitted.content
    assert submitted.json()["status"] == "pending_review"
    assert submitted.json()["submitted_at"]
    assert APIClient().get(f"{CATALOG}{listing['id']}/").status_code == 404

    approve(listing["id"])
    public = APIClient().get(f"{CATALOG}{listing['id']}/")
    assert public.status_code == 200
    assert public.json()["provider"] == {"id": provider.pk, "display_name": provider.display_name}


def test_a_listing_without_packages_cannot_be_submitted():
    client = client_for(ProviderFactory().user)
    listing = new_listing(client, CategoryFactory(), packages=[])
    response = client.post(f"{mine(listing['id'])}submit")
    assert response.status_code == 400
    assert "packages" in response.json()["error"]["fields"]


def test_steps_that_do_not_apply_are_409_with_the_current_status():
    provider = ProviderFactory()
    client = client_for(provider.user)
    draft = ListingFactory(provider=provider, status=Listing.Status.DRAFT)
    published = ListingFactory(provider=provider)

    for listing, step in [
        (draft, "pause"),
        (draft, "resume"),
        (draft, "withdraw"),
        (published, "submit"),
        (published, "resume"),
    ]:
        response = client.post(f"{mine(listing)}{step}")
        assert response.status_code == 409, (step, response.content)
        error = response.json()["error"]
        assert error["code"] == "invalid_state"
        assert error["status"] == listing.status
    assert client.delete(mine(published)).json()["error"]["status"] == "published"


def test_pause_resume_and_withdraw_by_the_provider():
    provider = ProviderFactory()
    client = client_for(provider.user)
    listing = ListingFactory(provider=provider)

    assert client.post(f"{mine(listing)}pause").json()["status"] == "paused"
    assert APIClient().get(f"{CATALOG}{listing.pk}/").status_code == 404
    assert client.post(f"{mine(listing)}resume").json()["status"] == "published"

    pending = ListingFactory(provider=provider, status=Listing.Status.PENDING_REVIEW)
    withdrawn = client.post(f"{mine(pending)}withdraw").json()
    assert (withdrawn["status"], withdrawn["submitted_at"]) == ("draft", None)


def test_resume_needs_onboarding_still_complete():
    provider = ProviderFactory()
    listing = ListingFactory(provider=provider, status=Listing.Status.PAUSED)
    PayeeProfile.objects.filter(payee_id=provider.pk).update(bank_iban="")
    response = client_for(provider.user).post(f"{mine(listing)}resume")
    assert response.json()["error"]["code"] == "onboarding_incomplete"


def test_editing_a_published_listing_sends_it_back_to_review():
    provider = ProviderFactory()
    client = client_for(provider.user)
    listing = ListingFactory(provider=provider)

    unchanged = client.patch(mine(listing), {"title": listing.title}, format="json")
    assert unchanged.json()["status"] == "published"
    edited = client.patch(mine(listing), {"title": "New title"}, format="json")
    assert edited.json()["status"] == "pending_review"
    assert APIClient().get(f"{CATALOG}{listing.pk}/").status_code == 404
    first_published = Listing.objects.get(pk=listing.pk).published_at
    approved = approve(listing.pk)
    assert approved.published_at == first_published  # keeps its place in "newest first"


def test_staff_pause_the_provider_cannot_resume_but_an_edit_goes_back_to_review():
    provider = ProviderFactory()
    client = client_for(provider.user)
    listing = listings.listing_staff_pause(listing=ListingFactory(provider=provider), reason="Bad")

    refused = client.post(f"{mine(listing)}resume")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "paused_by_staff"
    body = client.get(mine(listing)).json()
    assert (body["status"], body["paused_by_staff"], body["moderation_reason"]) == (
        "paused",
        True,
        "Bad",
    )
    edited = client.patch(mine(listing), {"description": "Fixed."}, format="json").json()
    assert (edited["status"], edited["paused_by_staff"]) == ("pending_review", False)


def test_a_suspended_provider_cannot_create_or_submit_and_leaves_the_catalog():
    provider = ProviderFactory()
    listing = ListingFactory(provider=provider)
    draft = ListingFactory(provider=provider, status=Listing.Status.DRAFT)
    Provider.objects.filter(pk=provider.pk).update(status=Provider.Status.SUSPENDED)
    client = client_for(provider.user)

    assert APIClient().get(f"{CATALOG}{listing.pk}/").status_code == 404
    assert APIClient().get(CATALOG).json()["count"] == 0
    created = client.post(MINE, {"category": CategoryFactory().pk, "title": "X"}, format="json")
    assert created.json()["error"]["code"] == "provider_suspended"
    assert client.post(f"{mine(draft)}submit").json()["error"]["code"] == "provider_suspended"


def test_moderation_services_refuse_what_does_not_apply():
    published = ListingFactory()
    with pytest.raises(listings.ListingStateError):
        listings.listing_reject(listing=published, reason="No")
    with pytest.raises(listings.ListingStateError):
        listings.listing_approve(listing=published)
    pending = ListingFactory(status=Listing.Status.PENDING_REVIEW)
    with pytest.raises(Exception, match="Say why"):
        listings.listing_reject(listing=pending, reason="  ")
    rejected = listings.listing_reject(listing=pending, reason="Too vague")
    assert (rejected.status, rejected.moderation_reason) == ("draft", "Too vague")


# --- the public catalog --------------------------------------------------------------------


def test_the_catalog_shows_only_published_listings_of_active_providers_with_packages():
    shown = ListingFactory(title="Shown")
    ListingPackageFactory(listing=shown, tier="premium", price=9000)
    for status in ("draft", "pending_review", "paused"):
        ListingFactory(status=status)
    ListingFactory(provider=ProviderFactory(status=Provider.Status.SUSPENDED))

    body = APIClient().get(CATALOG).json()

    assert body["count"] == 1
    (row,) = body["results"]
    assert row["title"] == "Shown"
    assert [(p["tier"], p["price"], p["currency"]) for p in row["packages"]] == [
        ("basic", 5000, "usd"),
        ("premium", 9000, "usd"),
    ]
    assert set(row) == {
        "id",
        "title",
        "description",
        "category",
        "provider",
        "published_at",
        "packages",
    }
    for hidden in Listing.objects.exclude(pk=shown.pk):
        assert APIClient().get(f"{CATALOG}{hidden.pk}/").status_code == 404


def test_catalog_filters():
    design, dev = CategoryFactory(slug="design"), CategoryFactory(slug="dev")
    nora = ProviderFactory(display_name="Northwind Studio")
    logo = ListingFactory(provider=nora, category=design, title="Logo design", packages__price=3000)
    api = ListingFactory(category=dev, title="Django API", packages__price=60000)
    ListingPackageFactory(listing=api, tier="premium", price=90000)
    euro = ListingFactory(category=dev, title="Audit", packages__currency="eur")

    def ids(**params: Any) -> list[int]:
        response = APIClient().get(CATALOG, params)
        assert response.status_code == 200, response.content
        return sorted(r["id"] for r in response.json()["results"])

    assert ids(category=design.pk) == [logo.pk]
    assert ids(category_slug="dev") == sorted([api.pk, euro.pk])
    assert ids(provider=nora.pk) == [logo.pk]
    assert ids(price_min=50000) == [api.pk]
    assert ids(price_max=5000) == sorted([logo.pk, euro.pk])
    assert ids(price_min=70000, price_max=95000) == [api.pk]  # only its premium package
    assert ids(currency="EUR") == [euro.pk]
    assert ids(search="northwind") == [logo.pk]
    assert ids(search="django api") == [api.pk]
    assert ids(search="logo nothing") == []

    for bad in ({"price_min": -1}, {"price_min": 10, "price_max": 5}, {"currency": "x"}):
        response = APIClient().get(CATALOG, bad)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"


def test_catalog_is_newest_first_and_paginated():
    older = ListingFactory()
    newer = ListingFactory()
    Listing.objects.filter(pk=older.pk).update(published_at=newer.published_at.replace(year=2020))
    page = APIClient().get(CATALOG, {"limit": 1}).json()
    assert page["count"] == 2
    assert [r["id"] for r in page["results"]] == [newer.pk]
    assert page["next"]


def test_list_apis_make_a_fixed_number_of_queries(django_assert_max_num_queries):
    provider = ProviderFactory()
    for _ in range(6):
        listing = ListingFactory(provider=provider)
        ListingPackageFactory(listing=listing, tier="standard", price=7000)
    client = client_for(provider.user)
    anonymous = APIClient()

    with django_assert_max_num_queries(3):  # count, page, packages
        assert len(anonymous.get(CATALOG).json()["results"]) == 6
    with django_assert_max_num_queries(6):  # + the provider and their user
        assert len(client.get(MINE).json()["results"]) == 6
    with django_assert_max_num_queries(2):
        assert anonymous.get("/api/v1/marketplace/categories/").status_code == 200


# --- the OpenAPI document ------------------------------------------------------------------


def test_the_endpoints_and_their_statuses_are_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    token = {"401", "429"}
    provider = token | {"403"}
    expected = {
        ("/api/v1/marketplace/categories/", "get"): {"200", "429"},
        ("/api/v1/marketplace/listings/", "get"): {"200", "400", "429"},
        ("/api/v1/marketplace/listings/{listing_id}/", "get"): {"200", "404", "429"},
        ("/api/v1/provider/profile", "get"): {"200"} | provider,
        # 403: a session-authenticated POST without its CSRF token (revenue_site.schema).
        # 415 where there is a body: one that is not JSON.
        ("/api/v1/provider/profile", "post"): {"201", "400", "403", "409", "415"} | token,
        ("/api/v1/provider/profile", "patch"): {"200", "400", "415"} | provider,
        ("/api/v1/provider/onboarding", "get"): {"200"} | provider,
        ("/api/v1/provider/onboarding/connect", "post"): {"201", "400", "409", "415", "503"}
        | provider,
        ("/api/v1/provider/onboarding/refresh", "post"): {"200", "503"} | provider,
        ("/api/v1/provider/onboarding/bank", "put"): {"200", "400", "409", "415"} | provider,
        ("/api/v1/provider/listings/", "get"): {"200", "400"} | provider,
        ("/api/v1/provider/listings/", "post"): {"201", "400", "409", "415"} | provider,
        ("/api/v1/provider/listings/{listing_id}/", "get"): {"200", "404"} | provider,
        ("/api/v1/provider/listings/{listing_id}/", "patch"): {"200", "400", "404", "409", "415"}
        | provider,
        ("/api/v1/provider/listings/{listing_id}/", "delete"): {"204", "404", "409"} | provider,
        ("/api/v1/provider/listings/{listing_id}/submit", "post"): {"200", "400", "404", "409"}
        | provider,
        ("/api/v1/provider/listings/{listing_id}/withdraw", "post"): {"200", "404", "409"}
        | provider,
        ("/api/v1/provider/listings/{listing_id}/pause", "post"): {"200", "404", "409"} | provider,
        ("/api/v1/provider/listings/{listing_id}/resume", "post"): {"200", "404", "409"} | provider,
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert set(responses) == statuses, (path, method, set(responses))
        for status in statuses - {"200", "201", "204"}:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error"
    package = schema["components"]["schemas"]["Package"]["properties"]
    assert {"tier", "price", "currency", "delivery_days", "revisions"} <= set(package)
    params = {p["name"] for p in paths["/api/v1/marketplace/listings/"]["get"]["parameters"]}
    assert {"category", "provider", "price_min", "price_max", "search", "limit"} <= params
