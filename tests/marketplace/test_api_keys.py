from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace import services
from marketplace.models import ApiKey
from tests.accounts.factories import UserFactory
from tests.marketplace.helpers import (
    KEYS,
    SUMMARY,
    bearer,
    error_of,
    key_for,
    token_client,
)

pytestmark = pytest.mark.django_db


def test_create_shows_the_key_once_and_stores_only_its_keyed_hash():
    user = UserFactory()
    response = token_client(user).post(KEYS, {"name": "prod"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "name", "prefix", "key", "scopes", "expires_at", "created_at"}
    assert body["prefix"].startswith("rk_test_") and len(body["prefix"]) == len("rk_test_") + 16
    assert body["key"].startswith(body["prefix"] + "_")
    assert body["scopes"] == ["usage:write", "usage:read"]
    row = ApiKey.objects.get(pk=body["id"])
    assert row.user == user
    assert body["key"] not in row.secret_hash
    assert row.secret_hash == services.api_key_hash(body["key"])
    assert bearer(body["key"]).get(SUMMARY, {"metric": "api_calls"}).status_code == 200


def test_live_mode_keys_say_so(settings):
    settings.STRIPE_LIVE_MODE = True
    assert key_for(UserFactory()).startswith("rk_live_")


def test_create_validates_scopes_and_expiry():
    client = token_client(UserFactory())
    error = error_of(client.post(KEYS, {"name": "x", "scopes": ["admin"]}, format="json"), 400)
    assert "scopes" in error["fields"]
    past = (timezone.now() - timedelta(days=1)).isoformat()
    error = error_of(client.post(KEYS, {"name": "x", "expires_at": past}, format="json"), 400)
    assert "expires_at" in error["fields"]
    error_of(client.post(KEYS, {}, format="json"), 400, "validation_error")


def test_list_shows_only_the_callers_keys_without_secrets(django_assert_max_num_queries):
    alice, bob = UserFactory(), UserFactory()
    for i in range(3):
        key_for(alice, name=f"a{i}")
    key_for(bob, name="b")
    with django_assert_max_num_queries(3):
        response = token_client(alice).get(KEYS)
    assert response.status_code == 200
    names = [row["name"] for row in response.json()]
    assert sorted(names) == ["a0", "a1", "a2"]
    for row in response.json():
        assert "key" not in row and "secret_hash" not in row


def test_api_key_endpoints_need_the_account_token_not_an_api_key():
    user = UserFactory()
    error_of(bearer(key_for(user)).get(KEYS), 401)
    error_of(bearer(key_for(user)).post(KEYS, {"name": "x"}, format="json"), 401)


def test_revoke_is_effective_on_the_next_request_of_another_client():
    user = UserFactory()
    created = token_client(user).post(KEYS, {"name": "k"}, format="json").json()
    # Another "process": a client that authenticated before, sharing no state with the revoker.
    other = bearer(created["key"])
    assert other.get(SUMMARY, {"metric": "api_calls"}).status_code == 200
    response = token_client(user).post(f"{KEYS}{created['id']}/revoke")
    assert response.status_code == 200
    assert response.json()["revoked_at"]
    error = error_of(other.get(SUMMARY, {"metric": "api_calls"}), 401, "authentication_failed")
    assert "revoked" in error["message"]
    error_of(bearer(created["key"]).get(SUMMARY, {"metric": "api_calls"}), 401)


def test_revoking_twice_keeps_the_first_time():
    user = UserFactory()
    key_id = ApiKey.objects.get(prefix=key_for(user)[: len("rk_test_") + 16]).pk
    first = token_client(user).post(f"{KEYS}{key_id}/revoke").json()["revoked_at"]
    assert token_client(user).post(f"{KEYS}{key_id}/revoke").json()["revoked_at"] == first


def test_another_users_key_is_a_404():
    alice, bob = UserFactory(), UserFactory()
    key = key_for(alice)
    key_id = ApiKey.objects.get(user=alice).pk
    error_of(token_client(bob).post(f"{KEYS}{key_id}/revoke"), 404, "not_found")
    assert bearer(key).get(SUMMARY, {"metric": "api_calls"}).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Bearer rk_test_unknown_key", "Bearer", "Bearer a b", "Token nope"],
)
def test_unknown_or_malformed_keys_are_401(header):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(SUMMARY, {"metric": "api_calls"})
    error_of(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_expired_key_is_401():
    user = UserFactory()
    key = key_for(user, expires_at=timezone.now() + timedelta(hours=1))
    assert bearer(key).get(SUMMARY, {"metric": "api_calls"}).status_code == 200
    ApiKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    error = error_of(bearer(key).get(SUMMARY, {"metric": "api_calls"}), 401)
    assert "expired" in error["message"]


def test_inactive_users_key_is_401():
    user = UserFactory()
    key = key_for(user)
    user.is_active = False
    user.save()
    error_of(bearer(key).get(SUMMARY, {"metric": "api_calls"}), 401)


def test_a_key_without_the_scope_is_403():
    key = key_for(UserFactory(), scopes=["usage:write"])
    error_of(bearer(key).get(SUMMARY, {"metric": "api_calls"}), 403, "permission_denied")
    key = key_for(UserFactory(), scopes=["usage:read"])
    response = bearer(key).post("/api/v1/usage/events", {"events": []}, format="json")
    error_of(response, 403, "permission_denied")


def test_last_used_is_written_at_most_once_a_minute(django_assert_num_queries):
    user = UserFactory()
    key = key_for(user)
    row = ApiKey.objects.get(user=user)
    assert row.last_used_at is None
    client = bearer(key)
    client.get(SUMMARY, {"metric": "api_calls"})
    row.refresh_from_db()
    first = row.last_used_at
    assert first is not None
    client.get(SUMMARY, {"metric": "api_calls"})
    row.refresh_from_db()
    assert row.last_used_at == first
    ApiKey.objects.update(last_used_at=first - timedelta(seconds=61))
    client.get(SUMMARY, {"metric": "api_calls"})
    row.refresh_from_db()
    assert row.last_used_at > first


def test_touch_does_not_write_when_another_process_just_did():
    user = UserFactory()
    key_for(user)
    row = ApiKey.objects.get(user=user)
    now = timezone.now()
    ApiKey.objects.update(last_used_at=now)
    stale_copy = ApiKey.objects.get(pk=row.pk)
    stale_copy.last_used_at = None  # this process has not seen the other's write
    services.api_key_touch(api_key=stale_copy, at=now + timedelta(seconds=10))
    row.refresh_from_db()
    assert row.last_used_at == now
