import logging

import pytest
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from accounts.models import User
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

SIGNUP = "/api/v1/accounts/signup"
TOKEN = "/api/v1/auth/token"
ME = "/api/v1/accounts/me"


def _rates(**overrides):
    """REST_FRAMEWORK with some throttle rates replaced."""
    from django.conf import settings

    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **overrides}
    return override_settings(
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    )


def assert_error_shape(response, status, code=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "fields"} <= set(body["error"])
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


@pytest.fixture
def api():
    return APIClient()


# --- sign-up -------------------------------------------------------------------------


def test_signup_returns_id_email_and_a_working_token(api):
    response = api.post(
        SIGNUP,
        {"email": "New@Example.com", "password": DEFAULT_PASSWORD, "name": "New"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "token"}
    user = User.objects.get(pk=body["id"])
    assert body["email"] == user.email == "new@example.com"
    assert Token.objects.get(user=user).key == body["token"]

    api.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    me = api.get(ME)
    assert me.status_code == 200
    assert me.json()["email"] == "new@example.com"
    assert me.json()["name"] == "New"


def test_signup_name_is_optional(api):
    response = api.post(SIGNUP, {"email": "a@example.com", "password": DEFAULT_PASSWORD})
    assert response.status_code == 201
    user = User.objects.get(email="a@example.com")
    assert user.name == ""
    assert user.check_password(DEFAULT_PASSWORD)
    assert (user.is_active, user.is_staff) == (True, False)
    assert Token.objects.get(user=user).key == response.json()["token"]


def test_signup_weak_password_names_the_password_field(api):
    response = api.post(SIGNUP, {"email": "a@example.com", "password": "password"}, format="json")
    error = assert_error_shape(response, 400, "validation_error")
    assert list(error["fields"]) == ["password"]
    assert error["fields"]["password"]
    assert not User.objects.exists()


def test_signup_taken_email_is_case_insensitive(api):
    UserFactory(email="taken@example.com")
    response = api.post(
        SIGNUP, {"email": "TAKEN@Example.com", "password": DEFAULT_PASSWORD}, format="json"
    )
    error = assert_error_shape(response, 400, "validation_error")
    assert list(error["fields"]) == ["email"]
    assert User.objects.count() == 1


def test_signup_missing_and_malformed_fields(api):
    response = api.post(SIGNUP, {"email": "not-an-email"}, format="json")
    error = assert_error_shape(response, 400, "validation_error")
    assert set(error["fields"]) == {"email", "password"}


def test_signup_ignores_a_session_without_csrf(api):
    """Sign-up takes no authentication, so a logged-in browser session cannot trip CSRF."""
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(UserFactory())
    response = api.post(SIGNUP, {"email": "b@example.com", "password": DEFAULT_PASSWORD})
    assert response.status_code == 201


def test_signup_is_throttled_per_ip(api):
    with _rates(signup="2/hour"):
        for n in range(2):
            response = api.post(
                SIGNUP,
                {"email": f"u{n}@example.com", "password": DEFAULT_PASSWORD},
                REMOTE_ADDR="10.0.0.1",
            )
            assert response.status_code == 201
        response = api.post(
            SIGNUP,
            {"email": "u9@example.com", "password": DEFAULT_PASSWORD},
            REMOTE_ADDR="10.0.0.1",
        )
        assert_error_shape(response, 429, "throttled")
        assert int(response["Retry-After"]) > 0
        # Another address is not affected.
        response = api.post(
            SIGNUP,
            {"email": "u10@example.com", "password": DEFAULT_PASSWORD},
            REMOTE_ADDR="10.0.0.2",
        )
        assert response.status_code == 201


# --- token ---------------------------------------------------------------------------


def test_token_for_valid_credentials(api):
    user = UserFactory(email="me@example.com")
    response = api.post(TOKEN, {"email": "ME@example.com", "password": DEFAULT_PASSWORD})
    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}
    # Asking again returns the same token.
    again = api.post(TOKEN, {"email": "me@example.com", "password": DEFAULT_PASSWORD})
    assert again.json() == response.json()


@pytest.mark.parametrize("case", ["wrong_password", "unknown_email", "inactive"])
def test_token_refusals_are_401_and_identical(api, case):
    user = UserFactory(email="me@example.com", is_active=case != "inactive")
    email = "other@example.com" if case == "unknown_email" else user.email
    password = "Wrong-password-1" if case == "wrong_password" else DEFAULT_PASSWORD
    response = api.post(TOKEN, {"email": email, "password": password}, format="json")
    error = assert_error_shape(response, 401, "authentication_failed")
    assert error["message"] == "Invalid email or password."
    assert error["fields"] == {}
    assert response["WWW-Authenticate"] == "Token"


def test_token_failure_is_logged_without_the_password(api, caplog):
    UserFactory(email="me@example.com")
    with caplog.at_level(logging.WARNING, logger="accounts.security"):
        api.post(TOKEN, {"email": "me@example.com", "password": "Secret-guess-77"})
    records = [r for r in caplog.records if r.name == "accounts.security"]
    assert len(records) == 1
    assert records[0].username == "me@example.com"
    assert records[0].ip == "127.0.0.1"
    assert "Secret-guess-77" not in caplog.text


def test_token_missing_fields_is_400(api):
    response = api.post(TOKEN, {"email": "me@example.com"}, format="json")
    error = assert_error_shape(response, 400, "validation_error")
    assert list(error["fields"]) == ["password"]


def test_token_is_throttled_per_ip(api):
    with _rates(auth_ip="3/min", auth_email="100/min"):
        for n in range(3):
            response = api.post(TOKEN, {"email": f"x{n}@example.com", "password": "nope"})
            assert response.status_code == 401
        response = api.post(TOKEN, {"email": "x9@example.com", "password": "nope"})
        assert_error_shape(response, 429, "throttled")
        other_ip = api.post(
            TOKEN, {"email": "x9@example.com", "password": "nope"}, REMOTE_ADDR="10.9.9.9"
        )
        assert other_ip.status_code == 401


def test_token_is_throttled_per_email_across_addresses(api):
    user = UserFactory(email="victim@example.com")
    with _rates(auth_ip="100/min", auth_email="2/min"):
        for n in range(2):
            response = api.post(
                TOKEN,
                {"email": "victim@example.com", "password": "nope"},
                REMOTE_ADDR=f"10.0.0.{n}",
            )
            assert response.status_code == 401
        # Even the right password, from yet another address, case-changed, is refused now.
        response = api.post(
            TOKEN,
            {"email": "VICTIM@example.com", "password": DEFAULT_PASSWORD},
            REMOTE_ADDR="10.0.0.99",
        )
        assert_error_shape(response, 429, "throttled")
        # Another account from the same address is fine.
        other = UserFactory()
        response = api.post(
            TOKEN, {"email": other.email, "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.0.0.1"
        )
        assert response.status_code == 200
    assert not Token.objects.filter(user=user).exists()


def test_throttle_rates_follow_settings():
    with _rates(auth_ip="7/min"):
        assert api_settings.DEFAULT_THROTTLE_RATES["auth_ip"] == "7/min"


# --- token authentication / me -------------------------------------------------------


def test_me_requires_authentication(api):
    error = assert_error_shape(api.get(ME), 401, "not_authenticated")
    assert error["fields"] == {}


def test_me_rejects_an_invalid_token(api):
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error_shape(api.get(ME), 401, "authentication_failed")


def test_me_rejects_the_token_of_a_deactivated_user(api):
    user = UserFactory()
    token = Token.objects.create(user=user)
    user.is_active = False
    user.save()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert_error_shape(api.get(ME), 401, "authentication_failed")


def test_me_returns_the_user(api):
    user = UserFactory(name="Ada")
    token = Token.objects.create(user=user)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = api.get(ME)
    assert response.status_code == 200
    assert response.json()["id"] == user.pk
    assert response.json()["email"] == user.email
    assert response.json()["name"] == "Ada"
    assert response.json()["is_staff"] is False


# --- schema --------------------------------------------------------------------------


def test_schema_and_docs_are_public_and_document_the_endpoints(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {SIGNUP, TOKEN, ME} <= set(paths)
    assert "201" in paths[SIGNUP]["post"]["responses"]
    assert "401" in paths[TOKEN]["post"]["responses"]
    assert api.get("/api/docs/").status_code == 200
