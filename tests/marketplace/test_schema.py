import pytest

pytestmark = pytest.mark.django_db


def test_the_endpoints_and_their_errors_are_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    # 403 on the key POSTs: a session-authenticated request without its CSRF token. 415: a
    # body that is not JSON (the usage API reads its body itself: not JSON is a 422).
    expected = {
        ("/api/v1/api-keys/", "get"): {"200", "401", "429"},
        ("/api/v1/api-keys/", "post"): {"201", "400", "401", "403", "415", "429"},
        ("/api/v1/api-keys/{api_key_id}/revoke", "post"): {"200", "401", "403", "404", "429"},
        ("/api/v1/usage/events", "post"): {"202", "401", "403", "413", "422", "429"},
        ("/api/v1/usage/events/{event_id}", "get"): {"200", "401", "403", "404", "429"},
        ("/api/v1/usage/summary", "get"): {"200", "400", "401", "403", "404", "429"},
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert set(responses) == statuses, (path, method)
        for status in statuses - {"200", "201", "202"}:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error"
    created = schema["components"]["schemas"]["ApiKeyCreated"]["properties"]
    assert {"id", "name", "prefix", "key"} <= set(created)
    assert "key" not in schema["components"]["schemas"]["ApiKey"]["properties"]
