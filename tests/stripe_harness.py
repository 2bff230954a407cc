"""Pytest plugin: Stripe through the local fake (``devstripe``).

Registered from ``tests/conftest.py`` (``pytest_plugins = ["tests.stripe_harness"]``).
The fake starts only when a test asks for one of these fixtures:

``devstripe_url`` (session)
    Base URL (``http://127.0.0.1:<free port>``) of a fake Stripe started as a subprocess
    (``python -m devstripe``) on first use and stopped at the end of the session.

``stripe_fake`` (function, needs the database; works with ``db`` and ``transactional_db``)
    Flushes the fake (objects, events, webhook endpoints), points the ``stripe`` client
    (``stripe.api_base``, ``stripe.api_key``) and dj-stripe (``settings.STRIPE_API_HOST``)
    at it, creates dj-stripe's ``APIKey`` and
    ``Account`` rows for ``settings.STRIPE_SECRET_KEY`` and returns a :class:`StripeFake`.
    Everything is restored afterwards.

Helpers for webhook tests: :func:`sign_webhook_payload` builds a ``Stripe-Signature`` header
exactly as Stripe does, :func:`post_signed_event` posts a signed event to our
``/stripe/webhook/<uuid>/`` with the Django test client, :func:`make_webhook_endpoint`
creates the dj-stripe ``WebhookEndpoint`` row that route needs, :class:`SignedInbox` delivers
the fake's events to that route in the order they happened. :func:`connected_account` makes
a Connect account Stripe will transfer to (onboarded).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stripe

BASE_DIR = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 20


def sign_webhook_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value Stripe sends for ``payload``.

    ``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<payload>")>``; the timestamp
    defaults to now.
    """
    if timestamp is None:
        timestamp = int(time.time())
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def make_webhook_endpoint(
    *, url: str = "http://testserver/stripe/webhook/", secret: str | None = None
) -> Any:
    """A test-mode dj-stripe ``WebhookEndpoint``; its route is ``/stripe/webhook/<uuid>/``."""
    from djstripe.models import WebhookEndpoint

    endpoint = WebhookEndpoint(
        id="we_test_" + secrets.token_hex(8),
        livemode=False,
        api_version="",
        enabled_events=["*"],
        secret=secret or "whsec_" + secrets.token_urlsafe(24),
        status="enabled",
    )
    endpoint.url = url.rstrip("/") + f"/{endpoint.djstripe_uuid}/"
    endpoint.save()
    return endpoint


def webhook_path(endpoint: Any) -> str:
    return f"/stripe/webhook/{endpoint.djstripe_uuid}/"


def post_signed_event(
    client: Any,
    endpoint: Any,
    event: dict[str, Any] | bytes,
    *,
    secret: str | None = None,
    timestamp: int | None = None,
) -> Any:
    """POST ``event`` to ``endpoint``'s dj-stripe route, signed with its secret (or ``secret``).

    ``client`` is a Django test client; returns its response.
    """
    payload = event if isinstance(event, bytes) else json.dumps(event).encode()
    header = sign_webhook_payload(payload, secret or endpoint.secret, timestamp)
    return client.post(
        webhook_path(endpoint),
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )


def connect_onboard(account_id: str, **flags: bool) -> dict[str, Any]:
    """Complete (or, with ``payouts_enabled=False`` …, undo) a connected account's onboarding
    on the fake ``stripe`` points at, as Stripe's hosted page does; returns the account."""
    form = {name: "true" if value else "false" for name, value in flags.items()}
    url = f"{stripe.api_base}/_config/accounts/{urllib.parse.quote(account_id)}/onboard"
    return json.loads(_request("POST", url, urllib.parse.urlencode(form).encode()))


def connected_account(*, onboarded: bool = True, **params: Any) -> Any:
    """An Express connected account on the fake (``params`` as for ``stripe.Account.create``),
    its onboarding complete unless ``onboarded=False``: Stripe transfers only to those."""
    account = stripe.Account.create(**{"type": "express", "country": "US", **params})
    if onboarded:
        connect_onboard(account.id)
    return account


class SignedInbox:
    """The fake's events, delivered to our webhook endpoint signed like Stripe's.

    ``client`` is a Django test client, ``on_commit`` pytest-django's
    ``django_capture_on_commit_callbacks`` (the inbox processes an event after its commit).
    """

    def __init__(self, client: Any, on_commit: Any) -> None:
        self.client = client
        self.on_commit = on_commit
        self.endpoint = make_webhook_endpoint()
        self.seen: set[str] = set()

    def new(self) -> list[dict[str, Any]]:
        """The events not seen yet, oldest first (raw JSON, as Stripe sends them)."""
        events = stripe.Event.list(limit=100).last_response.data["data"]
        fresh = [e for e in sorted(events, key=lambda e: e["created"]) if e["id"] not in self.seen]
        self.seen.update(e["id"] for e in fresh)
        return fresh

    def deliver(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for event in events:
            with self.on_commit(execute=True):
                response = post_signed_event(self.client, self.endpoint, json.dumps(event).encode())
            assert response.status_code == 200, response.content
        return events

    def deliver_new(self) -> list[dict[str, Any]]:
        return self.deliver(self.new())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(method: str, url: str, data: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


@pytest.fixture(scope="session")
def devstripe_url() -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="devstripe-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstripe",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"devstripe exited early; see {log.name}")
            try:
                _request("GET", url + "/_config/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"devstripe did not answer on {url}; see {log.name}"
                    ) from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# Stripe's test card that needs 3-D Secure on every payment.
THREE_D_SECURE_CARD = "4000002500003155"


def three_d_secure_card() -> str:
    """A new card PaymentMethod (unattached) that needs 3-D Secure on every payment."""
    return stripe.PaymentMethod.create(
        type="card",
        card={"number": THREE_D_SECURE_CARD, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    ).id


@dataclass
class StripeFake:
    """A flushed fake Stripe that ``stripe`` and dj-stripe talk to during one test."""

    api_base: str
    api_key: str
    account: Any

    def register_webhook(
        self,
        url: str,
        secret: str,
        *,
        events: list[str] | None = None,
        name: str | None = None,
        connect: bool = False,
    ) -> str:
        """Have the fake deliver events (all, or ``events``) to ``url`` signed with ``secret``:
        the platform's, or with ``connect`` the connected accounts' (as Stripe's endpoints)."""
        name = name or "test_" + secrets.token_hex(6)
        form = [("url", url), ("secret", secret), ("connect", "true" if connect else "false")]
        form += [("events[]", e) for e in events or []]
        body = urllib.parse.urlencode(form).encode()
        _request("POST", f"{self.api_base}/_config/webhooks/{name}", body)
        return name

    def deliveries(self) -> list[dict[str, Any]]:
        """Webhook deliveries attempted since the flush: event, type, endpoint, status."""
        return json.loads(_request("GET", self.api_base + "/_config/deliveries"))["data"]

    def wait_for_delivery(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """The first delivery matching ``predicate``; fails the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for delivery in self.deliveries():
                if predicate(delivery):
                    return delivery
            time.sleep(0.05)
        pytest.fail(f"no matching webhook delivery within {timeout}s: {self.deliveries()}")

    def fail_next(
        self, method: str, path: str, *, when: str = "before", status: int = 500, count: int = 1
    ) -> None:
        """The next ``count`` ``method path`` requests fail with ``status``: without running
        (``before``) or after running (``after``: the write happened, the answer is lost)."""
        form = {"method": method, "path": path, "when": when, "status": status, "count": count}
        _request("POST", self.api_base + "/_config/faults", urllib.parse.urlencode(form).encode())

    def authenticate(
        self, intent_id: str, *, client_secret: str | None = None, success: bool = True
    ) -> None:
        """The 3-D Secure step Stripe.js runs in the customer's browser (the fake's endpoint,
        which refuses a wrong secret), with the client secret the customer was handed (by
        default the intent's own)."""
        if client_secret is None:
            client_secret = stripe.PaymentIntent.retrieve(intent_id).client_secret
        form = {"client_secret": client_secret, "success": "true" if success else "false"}
        request = urllib.request.Request(
            f"{self.api_base}/v1/payment_intents/{intent_id}/_authenticate",
            data=urllib.parse.urlencode(form).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def clear_faults(self) -> None:
        """Forget the faults not yet used (``fail_next``): Stripe is back."""
        _request("DELETE", self.api_base + "/_config/faults")

    def flush(self) -> None:
        """Forget every object, queued event, delivery record and webhook endpoint."""
        _request("DELETE", self.api_base + "/_config/data")
        _request("DELETE", self.api_base + "/_config/webhooks")


@pytest.fixture
def stripe_fake(devstripe_url: str, db: None, settings: Any) -> Iterator[StripeFake]:
    from revenue_site.stripe_setup import stripe_api_key_sync

    saved = (stripe.api_base, stripe.api_key)
    settings.STRIPE_API_HOST = devstripe_url
    stripe.api_base = devstripe_url
    stripe.api_key = settings.STRIPE_SECRET_KEY
    fake = StripeFake(api_base=devstripe_url, api_key=settings.STRIPE_SECRET_KEY, account=None)
    fake.flush()
    try:
        fake.account = stripe_api_key_sync(
            secret_key=settings.STRIPE_SECRET_KEY
        ).djstripe_owner_account
        yield fake
    finally:
        _request("DELETE", devstripe_url + "/_config/webhooks")
        stripe.api_base, stripe.api_key = saved
