"""Path ids past 64 bits name no row: 404 in the API's error shape, on SQLite as on PostgreSQL
(SQLite cannot bind such an integer; schemathesis found the 500)."""

import pytest
from rest_framework.test import APIClient

from tests.accounts.factories import UserFactory
from tests.content.factories import CreatorFactory

pytestmark = pytest.mark.django_db

HUGE = "1769337820834232870633472"


def test_a_public_detail_with_a_huge_id_is_404():
    response = APIClient().get(f"/api/v1/marketplace/listings/{HUGE}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_creator_update_with_huge_ids_is_404():
    creator = CreatorFactory(user=UserFactory())
    client = APIClient()
    client.force_authenticate(creator.user)
    response = client.patch(
        f"/api/v1/creator/content/{HUGE}/license-types/2023/", {"amount": 100}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
