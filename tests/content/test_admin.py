import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from content.models import ContentItem, Creator
from ledger.models import PayeeProfile
from tests.accounts.factories import UserFactory
from tests.content.factories import (
    ContentItemFactory,
    CreatorFactory,
    LicenseFactory,
    LicenseTypeFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog():
    creators = CreatorFactory.create_batch(4)
    for creator in creators * 4:
        item = ContentItemFactory(owner=creator, kind="video")
        license_type = LicenseTypeFactory(item=item)
        LicenseFactory(license_type=license_type)
    return creators


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("creator", ""),
        ("creator", "?status__exact=active&q=example.com"),
        ("contentitem", ""),
        ("contentitem", "?status__exact=published&kind__exact=video&q=Item"),
        ("contentitem", "?q=user"),
        ("license", ""),
        ("license", "?status__exact=active&q=lk_"),
    ],
)
def test_changelists_render_with_bounded_queries(
    admin_client, catalog, model, query, django_assert_max_num_queries
):
    url = reverse(f"admin:content_{model}_changelist") + query
    with django_assert_max_num_queries(12):
        response = admin_client.get(url)
    assert response.status_code == 200


def test_search_finds_an_item_by_creator_email_and_a_licence_by_key_prefix(admin_client, catalog):
    item = ContentItem.objects.select_related("owner__user").first()
    page = admin_client.get(
        reverse("admin:content_contentitem_changelist"), {"q": item.owner.user.email}
    )
    assert page.context["cl"].result_count == 4
    license = item.licenses.first()
    page = admin_client.get(reverse("admin:content_license_changelist"), {"q": license.key_prefix})
    assert [row.pk for row in page.context["cl"].result_list] == [license.pk]
    # A pasted whole key finds its licence by the prefix.
    page = admin_client.get(
        reverse("admin:content_license_changelist"), {"q": f"{license.key_prefix}_secretpart"}
    )
    assert [row.pk for row in page.context["cl"].result_list] == [license.pk]


def test_the_item_page_shows_licence_types_and_the_licence_page_no_hash(admin_client, catalog):
    item = ContentItem.objects.first()
    page = admin_client.get(reverse("admin:content_contentitem_change", args=[item.pk]))
    assert page.status_code == 200
    license = item.licenses.first()
    page = admin_client.get(reverse("admin:content_license_change", args=[license.pk]))
    assert page.status_code == 200
    assert license.key_prefix in page.content.decode()
    assert license.key_hash not in page.content.decode()
    assert admin_client.get(reverse("admin:content_license_add")).status_code == 403


def test_unpublish_asks_for_a_reason_then_moderates_and_logs(admin_client):
    item = ContentItemFactory()
    url = reverse("admin:content_contentitem_changelist")
    form = admin_client.post(url, {"action": "unpublish", "_selected_action": [item.pk]})
    assert form.status_code == 200
    assert b"reason" in form.content
    item.refresh_from_db()
    assert item.status == ContentItem.Status.PUBLISHED

    response = admin_client.post(
        url,
        {"action": "unpublish", "_selected_action": [item.pk], "apply": "1", "reason": "Spam"},
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == ContentItem.Status.DRAFT
    assert item.moderation_note == "Spam"
    assert LogEntry.objects.filter(object_id=str(item.pk), change_message__contains="Spam")


def test_archive_and_republish(admin_client):
    item = ContentItemFactory()
    url = reverse("admin:content_contentitem_changelist")
    admin_client.post(
        url,
        {"action": "archive", "_selected_action": [item.pk], "apply": "1", "reason": "Stolen"},
    )
    item.refresh_from_db()
    assert item.status == ContentItem.Status.ARCHIVED
    admin_client.post(url, {"action": "republish", "_selected_action": [item.pk]})
    item.refresh_from_db()
    assert item.status == ContentItem.Status.PUBLISHED
    assert item.moderation_note == ""


def test_republish_refuses_a_suspended_creators_item(admin_client):
    item = ContentItemFactory(
        status=ContentItem.Status.DRAFT, published_at=None, owner__status="suspended"
    )
    admin_client.post(
        reverse("admin:content_contentitem_changelist"),
        {"action": "republish", "_selected_action": [item.pk]},
    )
    item.refresh_from_db()
    assert item.status == ContentItem.Status.DRAFT


def test_staff_create_a_creator_with_a_payee_profile(admin_client):
    user = UserFactory(password=None)
    response = admin_client.post(
        reverse("admin:content_creator_add"),
        {"user": user.pk, "display_name": "Staff made", "platform_fee_percent": "12.50",
         "status": "active"},
    )  # fmt: skip
    assert response.status_code == 302, response.content
    creator = Creator.objects.get(user=user)
    assert str(creator.platform_fee_percent) == "12.50"
    assert PayeeProfile.objects.filter(payee_type="creator", payee_id=creator.pk).exists()
