"""Every API error takes the shape {"error": {"code", "message", "fields"}} (DESIGN.md §5)."""

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.accounts.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.revenue_site.error_urls")]


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def token_api(api):
    token = Token.objects.create(user=UserFactory())
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return api


def error_of(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"code", "message", "fields"} <= set(error)
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    return error


def test_validation_error_names_fields(api):
    error = error_of(api.post("/api/v1/accounts/signup", {}, format="json"), 400)
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"email", "password"}
    assert error["fields"]["email"] == ["This field is required."]
    assert error["message"].startswith("email: ")


def test_django_validation_error_from_a_service_is_a_400(api):
    error = error_of(api.post("/api/test/django-validation"), 400)
    assert error["code"] == "validation_error"
    assert error["fields"] == {"amount": ["Must be positive."]}


def test_bad_json_is_400_not_500(api):
    response = api.post(
        "/api/v1/accounts/signup", data='{"email": ', content_type="application/json"
    )
    error = error_of(response, 400)
    assert error["code"] == "parse_error"


def test_bad_json_on_a_throttled_endpoint_is_400(api):
    # The per-email throttle reads the body before the view does.
    response = api.post("/api/v1/auth/token", data="{nope", content_type="application/json")
    assert error_of(response, 400)["code"] == "parse_error"


def test_unsupported_media_type_is_415_in_shape(api):
    response = api.post("/api/v1/accounts/signup", data="x", content_type="text/plain")
    assert error_of(response, 415)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("encoding", ["multipart", "form"])
def test_a_form_encoded_body_is_415_and_the_schema_says_so(api, encoding):
    """Form encodings cannot carry nested objects and lists, so the API takes JSON only."""
    from urllib.parse import urlencode

    from drf_spectacular.generators import SchemaGenerator

    body = {"email": "form@example.com", "password": "a long passphrase 123"}
    if encoding == "multipart":
        response = api.post("/api/v1/accounts/signup", body, format="multipart")
    else:
        response = api.post(
            "/api/v1/accounts/signup",
            urlencode(body),
            content_type="application/x-www-form-urlencoded",
        )
    assert error_of(response, 415)["code"] == "unsupported_media_type"

    schema = SchemaGenerator().get_schema(request=None, public=True)
    signup = schema["paths"]["/api/v1/accounts/signup"]["post"]
    assert list(signup["requestBody"]["content"]) == ["application/json"]
    assert "415" in signup["responses"]


def test_drf_not_found(api):
    error = error_of(api.get("/api/test/not-found"), 404)
    assert error == {"code": "not_found", "message": "No such widget.", "fields": {}}


def test_unknown_api_url_is_json_404(api):
    error = error_of(api.get("/api/v1/no-such-thing"), 404)
    assert error["code"] == "not_found"


def test_unknown_non_api_url_keeps_the_html_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_401_without_credentials(api):
    response = api.get("/api/v1/accounts/me")
    error = error_of(response, 401)
    assert error["code"] == "not_authenticated"
    assert response["WWW-Authenticate"]


def test_401_with_an_invalid_token(api):
    api.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef")
    error = error_of(api.get("/api/v1/accounts/me"), 401)
    assert error["code"] == "authentication_failed"


def test_403_authenticated_but_not_permitted(token_api):
    error = error_of(token_api.get("/api/test/forbidden"), 403)
    assert error["code"] == "permission_denied"
    assert error["message"] == "Staff only."


def test_django_permission_denied_is_403_in_shape(token_api):
    error = error_of(token_api.get("/api/test/django-forbidden"), 403)
    assert error["code"] == "permission_denied"


def test_405_method_not_allowed(api):
    error = error_of(api.get("/api/v1/accounts/signup"), 405)
    assert error["code"] == "method_not_allowed"
    assert "GET" in error["message"]


def test_409_conflict(api):
    error = error_of(api.post("/api/test/conflict"), 409)
    assert error == {"code": "conflict", "message": "Already paid.", "fields": {}}


def test_429_throttled(api):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "signup": "1/hour"}
    with override_settings(
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    ):
        api.post("/api/v1/accounts/signup", {}, format="json")
        response = api.post("/api/v1/accounts/signup", {}, format="json")
    error = error_of(response, 429)
    assert error["code"] == "throttled"
    assert error["retry_after"] > 0
    assert response["Retry-After"]


def test_csrf_failure_on_a_session_authenticated_api_call_is_403_in_shape():
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(UserFactory())
    error = error_of(api.post("/api/test/echo", {"a": 1}, format="json"), 403)
    assert error["code"] == "permission_denied"
    assert "CSRF" in error["message"]


def test_success_responses_are_not_wrapped(api):
    response = api.post("/api/test/echo", {"a": 1}, format="json")
    assert response.status_code == 200
    assert response.json() == {"received": {"a": 1}}


def test_a_bug_is_a_json_500_without_details():
    api = APIClient(raise_request_exception=False)
    error = error_of(api.get("/api/test/boom"), 500)
    assert error["code"] == "server_error"
    assert "a bug" not in error["message"]
