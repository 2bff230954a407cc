import pytest

pytestmark = pytest.mark.django_db


def test_the_endpoints_and_their_errors_are_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    creator = {"401", "403", "429"}
    body = {"400", "415"}  # 415: a body that is not JSON
    expected = {
        ("/api/v1/content/", "get"): {"200", "400", "429"},
        ("/api/v1/content/{item_id}/", "get"): {"200", "404", "429"},
        ("/api/v1/creator/profile", "get"): {"200", *creator},
        # 403: a session-authenticated POST without its CSRF token.
        ("/api/v1/creator/profile", "post"): {"201", *body, "409", *creator},
        ("/api/v1/creator/content/", "get"): {"200", "400", *creator},  # 400: bad limit/offset
        ("/api/v1/creator/content/", "post"): {"201", *body, *creator},
        ("/api/v1/creator/content/{item_id}/", "get"): {"200", "404", *creator},
        ("/api/v1/creator/content/{item_id}/", "patch"): {"200", *body, "404", *creator},
        ("/api/v1/creator/content/{item_id}/shares", "put"): {"200", *body, "404", *creator},
        ("/api/v1/creator/content/{item_id}/license-types/", "post"): {
            "201",
            *body,
            "404",
            *creator,
        },
        ("/api/v1/creator/content/{item_id}/license-types/{license_type_id}/", "patch"): {
            "200",
            *body,
            "404",
            *creator,
        },
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert set(responses) == statuses, (path, method)
        for status in statuses - {"200", "201"}:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error"
    catalog = paths["/api/v1/content/"]["get"]
    assert {p["name"] for p in catalog["parameters"]} >= {"kind", "creator", "limit", "offset"}
    assert catalog.get("security") in (None, [], [{}])
    item = schema["components"]["schemas"]["CatalogItem"]["properties"]
    assert {
        "id",
        "title",
        "kind",
        "description",
        "creator",
        "published_at",
        "license_types",
    } <= set(item)
    license_type = schema["components"]["schemas"]["CatalogLicenseType"]["properties"]
    assert {"id", "kind", "price", "currency", "term_days", "limits"} <= set(license_type)
