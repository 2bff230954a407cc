from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from content.models import ContentItem, ContentShare, Creator, LicenseType
from ledger.models import PayeeProfile
from tests.accounts.factories import UserFactory
from tests.content.factories import ContentItemFactory, CreatorFactory, LicenseTypeFactory

pytestmark = pytest.mark.django_db

CATALOG = "/api/v1/content/"
PROFILE = "/api/v1/creator/profile"
MINE = "/api/v1/creator/content/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body["error"]) >= {"code", "message", "fields"}
    return body["error"]


# --- catalog -------------------------------------------------------------------------------


def test_the_catalog_lists_published_items_with_active_licence_types():
    item = ContentItemFactory(kind="video", description="A film")
    personal = LicenseTypeFactory(item=item, limits={"downloads": 3}, term_days=30)
    LicenseTypeFactory(item=item, is_active=False)
    ContentItemFactory(status=ContentItem.Status.DRAFT, published_at=None)
    ContentItemFactory(status=ContentItem.Status.ARCHIVED)

    body = APIClient().get(CATALOG).json()
    assert body["count"] == 1
    [row] = body["results"]
    assert row == {
        "id": item.pk,
        "title": item.title,
        "kind": "video",
        "description": "A film",
        "creator": {"id": item.owner.pk, "display_name": item.owner.display_name},
        "published_at": row["published_at"],
        "license_types": [
            {
                "id": personal.pk,
                "kind": "personal",
                "pricing": "one_time",
                "price": 1999,
                "currency": "usd",
                "term_days": 30,
                "limits": {"downloads": 3},
                "overage": "block",
            }
        ],
    }
    assert row["published_at"].endswith("Z")


def test_the_catalog_filters_by_kind_and_creator_and_paginates():
    creator = CreatorFactory()
    ContentItemFactory.create_batch(3, owner=creator, kind="audio")
    ContentItemFactory.create_batch(2, kind="dataset")
    client = APIClient()
    assert client.get(CATALOG, {"kind": "audio"}).json()["count"] == 3
    assert client.get(CATALOG, {"kind": "dataset"}).json()["count"] == 2
    assert client.get(CATALOG, {"creator": creator.pk}).json()["count"] == 3
    page = client.get(CATALOG, {"limit": 2, "offset": 1}).json()
    assert page["count"] == 5
    assert len(page["results"]) == 2
    assert error_of(client.get(CATALOG, {"kind": "podcast"}), 400)["fields"].keys() == {"kind"}
    assert error_of(client.get(CATALOG, {"creator": "x"}), 400)["fields"].keys() == {"creator"}


def test_a_suspended_creators_items_are_off_the_catalog():
    item = ContentItemFactory(owner__status=Creator.Status.SUSPENDED)
    assert APIClient().get(CATALOG).json()["count"] == 0
    error_of(APIClient().get(f"{CATALOG}{item.pk}/"), 404)


def test_the_catalog_list_has_bounded_queries(django_assert_max_num_queries):
    for _ in range(20):
        item = ContentItemFactory()
        LicenseTypeFactory.create_batch(2, item=item)
    with django_assert_max_num_queries(3):  # count, page, licence types
        response = APIClient().get(CATALOG)
    assert len(response.json()["results"]) == 20


def test_the_catalog_item_is_404_unless_published():
    item = ContentItemFactory()
    assert APIClient().get(f"{CATALOG}{item.pk}/").json()["id"] == item.pk
    draft = ContentItemFactory(status=ContentItem.Status.DRAFT, published_at=None)
    assert error_of(APIClient().get(f"{CATALOG}{draft.pk}/"), 404)["code"] == "not_found"
    error_of(APIClient().get(f"{CATALOG}999999/"), 404)


# --- creator profile -----------------------------------------------------------------------


def test_a_user_becomes_a_creator_once():
    user = UserFactory(password=None)
    client = client_for(user)
    assert error_of(client.get(PROFILE), 403)["code"] == "permission_denied"
    response = client.post(PROFILE, {"display_name": "Ada"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["display_name"] == "Ada"
    assert body["platform_fee_percent"] == "20.00"
    assert body["status"] == "active"
    creator = Creator.objects.get(user=user)
    assert PayeeProfile.objects.filter(payee_type="creator", payee_id=creator.pk).exists()
    assert client.get(PROFILE).json()["id"] == creator.pk
    # Already a creator: a state, like an existing provider profile (409), not bad input.
    again = error_of(client.post(PROFILE, {"display_name": "Again"}, format="json"), 409)
    assert again["code"] == "conflict"
    assert Creator.objects.filter(user=user).count() == 1
    blank = error_of(
        client_for(UserFactory(password=None)).post(PROFILE, {"display_name": ""}, format="json"),
        400,
    )
    assert "display_name" in blank["fields"]


def test_the_creator_api_needs_a_token_and_a_creator():
    error_of(APIClient().get(MINE), 401)
    error_of(APIClient().post(PROFILE, {"display_name": "x"}, format="json"), 401)
    assert error_of(client_for(UserFactory(password=None)).get(MINE), 403)["code"] == (
        "permission_denied"
    )


# --- creator content -----------------------------------------------------------------------


@pytest.fixture
def creator():
    return CreatorFactory()


@pytest.fixture
def api(creator):
    return client_for(creator.user)


def test_a_creator_creates_edits_and_publishes_an_item(api, creator):
    response = api.post(MINE, {"title": "Dataset", "kind": "dataset"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "draft"
    assert body["shares"] == [
        {"creator": {"id": creator.pk, "display_name": creator.display_name}, "percent": "100.0000"}
    ]
    url = f"{MINE}{body['id']}/"
    assert APIClient().get(f"{CATALOG}{body['id']}/").status_code == 404

    response = api.patch(url, {"title": "Weather data", "status": "published"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["title"] == "Weather data"
    assert response.json()["published_at"] is not None
    assert APIClient().get(f"{CATALOG}{body['id']}/").status_code == 200
    assert api.get(MINE).json()["count"] == 1


def test_invalid_item_input_names_the_fields(api):
    error = error_of(api.post(MINE, {"title": "", "kind": "podcast"}, format="json"), 400)
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"title", "kind"}
    item = ContentItemFactory(owner=Creator.objects.get())
    error = error_of(api.patch(f"{MINE}{item.pk}/", {"status": "gone"}, format="json"), 400)
    assert set(error["fields"]) == {"status"}
    error_of(api.post(MINE, "not json", content_type="application/json"), 400)


def test_a_suspended_creator_cannot_publish(api, creator):
    item = ContentItemFactory(owner=creator, status=ContentItem.Status.DRAFT, published_at=None)
    Creator.objects.filter(pk=creator.pk).update(status=Creator.Status.SUSPENDED)
    error = error_of(api.patch(f"{MINE}{item.pk}/", {"status": "published"}, format="json"), 400)
    assert "suspended" in error["fields"]["status"][0]


def test_another_creators_items_are_404(api):
    theirs = ContentItemFactory()
    license_type = LicenseTypeFactory(item=theirs)
    url = f"{MINE}{theirs.pk}/"
    assert error_of(api.get(url), 404)["code"] == "not_found"
    error_of(api.patch(url, {"title": "mine now"}, format="json"), 404)
    error_of(api.put(f"{url}shares", {"shares": []}, format="json"), 404)
    error_of(api.post(f"{url}license-types/", {"kind": "personal"}, format="json"), 404)
    error_of(api.patch(f"{url}license-types/{license_type.pk}/", {"amount": 1}, format="json"), 404)
    assert api.get(MINE).json()["count"] == 0
    theirs.refresh_from_db()
    assert theirs.title != "mine now"


def test_the_creator_list_has_bounded_queries(api, creator, django_assert_max_num_queries):
    others = CreatorFactory.create_batch(2)
    for _ in range(10):
        item = ContentItemFactory(owner=creator)
        LicenseTypeFactory.create_batch(2, item=item)
        ContentShare.objects.create(item=item, creator=creator, percent=50)
        ContentShare.objects.create(item=item, creator=others[0], percent=50)
    with django_assert_max_num_queries(6):
        response = api.get(MINE)
    assert len(response.json()["results"]) == 10


# --- shares ----------------------------------------------------------------------------------


def test_shares_are_set_exactly_to_100(api, creator):
    item = ContentItemFactory(owner=creator)
    b, c = CreatorFactory(), CreatorFactory()
    url = f"{MINE}{item.pk}/shares"
    shares = [
        {"creator": creator.pk, "percent": "33.33"},
        {"creator": b.pk, "percent": "33.33"},
        {"creator": c.pk, "percent": "33.34"},
    ]
    response = api.put(url, {"shares": shares}, format="json")
    assert response.status_code == 200, response.content
    assert [row["percent"] for row in response.json()] == ["33.3300", "33.3300", "33.3400"]
    assert sum(ContentShare.objects.filter(item=item).values_list("percent", flat=True)) == 100

    shares[2]["percent"] = "33.33"
    error = error_of(api.put(url, {"shares": shares}, format="json"), 400)
    assert "100" in error["fields"]["shares"][0]
    error = error_of(
        api.put(url, {"shares": [{"creator": b.pk, "percent": "100"}]}, format="json"), 400
    )
    assert "owner" in error["fields"]["shares"][0]
    error = error_of(
        api.put(url, {"shares": [{"creator": 999999, "percent": "100"}]}, format="json"), 400
    )
    assert "Unknown creator" in error["fields"]["shares"][0]
    error = error_of(api.put(url, {"shares": [{"creator": "x"}]}, format="json"), 400)
    assert "shares" in error["fields"]
    assert ContentShare.objects.filter(item=item).count() == 3


# --- licence types ---------------------------------------------------------------------------


def test_a_creator_offers_and_changes_licence_types(api, creator):
    item = ContentItemFactory(owner=creator)
    url = f"{MINE}{item.pk}/license-types/"
    response = api.post(
        url,
        {
            "kind": "usage_royalty",
            "pricing": "per_use",
            "currency": "EUR",
            "per_use_unit_amount": "0.5",
            "limits": {"api_calls": 10000},
            "overage": "allow_125",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["currency"] == "eur"
    assert body["per_use_unit_amount"] == "0.500000"
    assert body["term_days"] is None

    response = api.patch(f"{url}{body['id']}/", {"is_active": False}, format="json")
    assert response.status_code == 200
    assert LicenseType.objects.get(pk=body["id"]).is_active is False
    assert APIClient().get(f"{CATALOG}{item.pk}/").json()["license_types"] == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "personal", "amount": 0, "currency": "usd"}, "amount"),
        ({"kind": "personal", "amount": -1, "currency": "usd"}, "amount"),
        ({"kind": "personal", "amount": 100, "currency": "us"}, "currency"),
        ({"kind": "personal", "amount": 100, "currency": "usd", "limits": {"x": 1}}, "limits"),
        ({"kind": "personal", "amount": 100, "currency": "usd", "limits": "lots"}, "limits"),
        ({"kind": "personal", "amount": 100, "currency": "usd", "term_days": 0}, "term_days"),
        ({"kind": "nope", "amount": 100, "currency": "usd"}, "kind"),
        ({"kind": "personal", "amount": "1.5", "currency": "usd"}, "amount"),
        ({"kind": "personal", "amount": 2**64, "currency": "usd"}, "amount"),
        ({"kind": "usage_royalty", "amount": 100, "currency": "usd"}, "pricing"),
        ({"amount": 100, "currency": "usd"}, "kind"),
    ],
)
def test_invalid_licence_types_are_400_naming_the_field(api, creator, payload, field):
    item = ContentItemFactory(owner=creator)
    error = error_of(api.post(f"{MINE}{item.pk}/license-types/", payload, format="json"), 400)
    assert field in error["fields"]
    assert not LicenseType.objects.exists()


def test_an_invalid_licence_type_change_is_400(api, creator):
    license_type = LicenseTypeFactory(item=ContentItemFactory(owner=creator))
    url = f"{MINE}{license_type.item_id}/license-types/{license_type.pk}/"
    error = error_of(api.patch(url, {"pricing": "per_use"}, format="json"), 400)
    assert "per_use_unit_amount" in error["fields"] or "amount" in error["fields"]
    error_of(
        api.patch(f"{MINE}{license_type.item_id}/license-types/999999/", {}, format="json"), 404
    )
    license_type.refresh_from_db()
    assert license_type.pricing == "one_time"


def test_prices_keep_decimal_precision():
    license_type = LicenseTypeFactory(
        pricing="per_use", amount=0, per_use_unit_amount=Decimal("0.000001"), kind="usage_royalty"
    )
    license_type.refresh_from_db()
    assert license_type.per_use_unit_amount == Decimal("0.000001")
