"""The API's limit/offset pagination refuses what the database cannot add (a huge ``limit`` or
``offset`` was a 500, "bigint out of range", found by schemathesis) and says so in the schema."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from revenue_site.pagination import MAXIMUM
from tests.affiliates.factories import AffiliateFactory, ReferralLinkFactory

pytestmark = pytest.mark.django_db
LINKS = "/api/v1/affiliate/links"


@pytest.fixture
def api() -> APIClient:
    affiliate: Any = AffiliateFactory(status="approved")
    ReferralLinkFactory(affiliate=affiliate)
    client = APIClient()
    client.force_authenticate(affiliate.user)
    return client


@pytest.mark.parametrize("name", ["limit", "offset"])
@pytest.mark.parametrize("value", [str(MAXIMUM + 1), "71042756597472833830912"])
def test_a_value_past_the_maximum_is_a_400_naming_it(api, name, value):
    response = api.get(LINKS, {name: value})
    assert response.status_code == 400, response.content
    assert name in response.json()["error"]["fields"]


def test_the_maximum_itself_is_answered(api):
    assert api.get(LINKS, {"offset": str(MAXIMUM), "limit": "1"}).json()["results"] == []
    assert len(api.get(LINKS, {"limit": str(MAXIMUM)}).json()["results"]) == 1


def test_the_schema_states_the_bounds():
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    parameters = {p["name"]: p["schema"] for p in schema["paths"][LINKS]["get"]["parameters"]}
    assert parameters["limit"]["minimum"] == 1 and parameters["limit"]["maximum"] == MAXIMUM
    assert parameters["offset"]["minimum"] == 0 and parameters["offset"]["maximum"] == MAXIMUM
