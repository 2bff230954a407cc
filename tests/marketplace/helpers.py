"""Shared pieces of the API billing tests: keys, clients, batches, error-shape checks."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace import services
from marketplace.models import Meter

EVENTS = "/api/v1/usage/events"
SUMMARY = "/api/v1/usage/summary"
KEYS = "/api/v1/api-keys/"


@pytest.fixture(autouse=True)
def _clear_throttles():
    cache.clear()
    yield
    cache.clear()


def key_for(user: Any, **kwargs: Any) -> str:
    return services.api_key_create(user=user, name=kwargs.pop("name", "test"), **kwargs).key


def bearer(key: str) -> APIClient:
    """A fresh client (no state shared with any other) sending the API key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def token_client(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def iso(at: Any) -> str:
    return at.isoformat().replace("+00:00", "Z")


def event(event_id: str, quantity: Any = 1, metric: str = "api_calls", **extra: Any) -> dict:
    body = {
        "id": event_id,
        "metric": metric,
        "quantity": quantity,
        "timestamp": iso(extra.pop("at", timezone.now() - timedelta(minutes=1))),
    }
    body.update(extra)
    return body


def post_events(client: APIClient, events: list[dict]) -> Any:
    return client.post(EVENTS, {"events": events}, format="json")


def error_of(response: Any, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "fields"} <= set(body["error"])
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


def api_calls() -> Meter:
    return Meter.objects.get(code="api_calls")


def post_concurrently(key: str, events: list[dict], *, times: int = 5) -> list[tuple[int, dict]]:
    """The same batch sent `times` times at once, each by its own thread and connection (they
    wait on a barrier so the requests overlap); (status, body) of each."""
    barrier = threading.Barrier(times)

    def send(_i: int) -> tuple[int, dict]:
        try:
            barrier.wait(timeout=10)
            response = post_events(bearer(key), events)
            return response.status_code, response.json()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(send, range(times)))
