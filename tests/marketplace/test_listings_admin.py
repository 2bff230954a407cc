"""The services marketplace in the staff console: changelists with bounded queries, providers
with their onboarding status, the moderation queue and its actions (each logged)."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from ledger.models import PayeeProfile
from marketplace.models import Listing, Provider
from tests.marketplace.factories import (
    CategoryFactory,
    ListingFactory,
    ListingPackageFactory,
    ProviderFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketplace():
    categories = CategoryFactory.create_batch(2)
    providers = [*ProviderFactory.create_batch(3), ProviderFactory(onboarded=False)]
    PayeeProfile.objects.create(
        payee_type="provider",
        payee_id=providers[-1].pk,
        method=PayeeProfile.Method.STRIPE_CONNECT,
        stripe_account_id="acct_notyet0000001",
    )
    for provider in providers:
        for status in Listing.Status.values:
            listing = ListingFactory(provider=provider, category=categories[0], status=status)
            ListingPackageFactory(listing=listing, tier="premium", price=12000)
    return providers


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("category", ""),
        ("provider", ""),
        ("provider", "?status__exact=active&onboarding=complete&q=example.com"),
        ("provider", "?onboarding=incomplete"),
        ("listing", ""),
        ("listing", "?status__exact=published&paused_by_staff__exact=0&q=Service"),
        ("listingreviewqueue", ""),
    ],
)
def test_changelists_render_with_bounded_queries(
    admin_client, marketplace, model, query, django_assert_max_num_queries
):
    url = reverse(f"admin:marketplace_{model}_changelist") + query
    with django_assert_max_num_queries(12):
        response = admin_client.get(url)
    assert response.status_code == 200


def test_providers_show_their_payout_onboarding(admin_client, marketplace):
    url = reverse("admin:marketplace_provider_changelist")
    complete = admin_client.get(url, {"onboarding": "complete"}).context["cl"].result_list
    incomplete = admin_client.get(url, {"onboarding": "incomplete"}).context["cl"].result_list
    assert sorted(p.pk for p in complete) == sorted(p.pk for p in marketplace[:3])
    assert [p.pk for p in incomplete] == [marketplace[3].pk]
    row = incomplete[0]
    assert (row.payout_method, row.stripe_account, row.payouts_enabled) == (
        "stripe_connect",
        "acct_notyet0000001",
        False,
    )
    page = admin_client.get(url).content.decode()
    assert "acct_notyet0000001" in page


def test_the_moderation_queue_lists_pending_listings_oldest_first(admin_client, marketplace):
    response = admin_client.get(reverse("admin:marketplace_listingreviewqueue_changelist"))
    rows = list(response.context["cl"].result_list)
    assert {r.status for r in rows} == {"pending_review"}
    assert len(rows) == 4
    assert [r.submitted_at for r in rows] == sorted(r.submitted_at for r in rows)
    assert "$50.00" in response.content.decode()  # the cheapest package


def test_approve_publishes_and_logs_and_refuses_an_unpayable_provider(admin_client, marketplace):
    payable = Listing.objects.get(provider=marketplace[0], status="pending_review")
    unpayable = Listing.objects.get(provider=marketplace[3], status="pending_review")
    url = reverse("admin:marketplace_listingreviewqueue_changelist")

    response = admin_client.post(
        url, {"action": "approve", "_selected_action": [payable.pk, unpayable.pk]}, follow=True
    )

    assert response.status_code == 200
    payable.refresh_from_db()
    unpayable.refresh_from_db()
    assert (payable.status, unpayable.status) == ("published", "pending_review")
    messages = [str(m) for m in response.context["messages"]]
    assert any("onboarding" in m for m in messages)
    log = LogEntry.objects.get(object_id=str(payable.pk))
    assert log.change_message == "Approve."
    assert not LogEntry.objects.filter(object_id=str(unpayable.pk)).exists()


def test_reject_asks_for_a_reason_then_moves_to_draft_and_logs(admin_client, marketplace):
    listing = Listing.objects.filter(status="pending_review").first()
    url = reverse("admin:marketplace_listing_changelist")

    form = admin_client.post(url, {"action": "reject", "_selected_action": [listing.pk]})
    assert form.status_code == 200
    assert "the provider sees the reason" in form.content.decode()
    listing.refresh_from_db()
    assert listing.status == "pending_review"

    done = admin_client.post(
        url,
        {
            "action": "reject",
            "_selected_action": [listing.pk],
            "apply": "1",
            "reason": "Show real samples.",
        },
    )
    assert done.status_code == 302
    listing.refresh_from_db()
    assert (listing.status, listing.moderation_reason) == ("draft", "Show real samples.")
    assert LogEntry.objects.get(object_id=str(listing.pk)).change_message == (
        "Reject (Show real samples.)."
    )


def test_staff_pause_needs_a_reason_and_applies_to_published_only(admin_client, marketplace):
    published = Listing.objects.filter(status="published").first()
    draft = Listing.objects.filter(status="draft").first()
    url = reverse("admin:marketplace_listing_changelist")

    response = admin_client.post(
        url,
        {
            "action": "pause",
            "_selected_action": [published.pk, draft.pk],
            "apply": "1",
            "reason": "Reported.",
        },
        follow=True,
    )

    published.refresh_from_db()
    draft.refresh_from_db()
    assert (published.status, published.paused_by_staff) == ("paused", True)
    assert draft.status == "draft"
    assert any("Cannot pause" in str(m) for m in response.context["messages"])


def test_suspend_and_reinstate_a_provider(admin_client, marketplace):
    provider = marketplace[0]
    url = reverse("admin:marketplace_provider_changelist")
    admin_client.post(url, {"action": "suspend", "_selected_action": [provider.pk]})
    provider.refresh_from_db()
    assert provider.status == Provider.Status.SUSPENDED
    admin_client.post(url, {"action": "reinstate", "_selected_action": [provider.pk]})
    provider.refresh_from_db()
    assert provider.status == Provider.Status.ACTIVE
    assert [e.change_message for e in LogEntry.objects.order_by("pk")] == [
        "Suspend.",
        "Reinstate.",
    ]


def test_listing_pages_are_read_only_with_their_packages(admin_client, marketplace):
    listing = Listing.objects.first()
    page = admin_client.get(reverse("admin:marketplace_listing_change", args=[listing.pk]))
    assert page.status_code == 200
    assert "$120.00" in page.content.decode()
    assert admin_client.get(reverse("admin:marketplace_listing_add")).status_code == 403
    assert admin_client.get(reverse("admin:marketplace_provider_add")).status_code == 403


def test_category_commission_is_edited_in_the_console(admin_client):
    category = CategoryFactory(commission_percent="15.00")
    url = reverse("admin:marketplace_category_change", args=[category.pk])
    response = admin_client.post(
        url, {"name": category.name, "slug": category.slug, "commission_percent": "101"}
    )
    assert response.status_code == 200  # the form again, with the error
    response = admin_client.post(
        url, {"name": category.name, "slug": category.slug, "commission_percent": "12.5"}
    )
    assert response.status_code == 302
    category.refresh_from_db()
    assert str(category.commission_percent) == "12.50"
