# ruff: noqa: F811  (pytest fixtures imported from api_helpers are parameters here)
"""Checkout and Billing Portal sessions at the HTTP boundary.

The fake Stripe has neither, so a tiny local HTTP server stands in for api.stripe.com for the
session call only: the test asserts what the real stripe client sent (method, path,
form-encoded parameters, Idempotency-Key, Authorization) and that our 201 carries the url
from Stripe's answer. The customer is created beforehand in the fake Stripe as usual.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from subscriptions.services.billing import billing_customer_ensure
from tests.subscriptions.api_helpers import (  # noqa: F401 (fixtures)
    _clear_throttles,
    alice,
    catalog,
    client_for,
    error_of,
)


class StubStripe:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply: dict[str, Any] = {}
        self.status = 200


@pytest.fixture
def stub_stripe(stripe_fake, monkeypatch) -> Iterator[StubStripe]:
    stub = StubStripe()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            stub.requests.append(
                {
                    "method": "POST",
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "form": urllib.parse.parse_qs(raw, keep_blank_values=True),
                }
            )
            body = json.dumps(stub.reply).encode()
            self.send_response(stub.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Request-Id", "req_stub")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.base = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()


def _point_stripe_at(stub: StubStripe, monkeypatch) -> None:
    monkeypatch.setattr(stripe, "api_base", stub.base)  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _site_host(settings):
    """Requests come to https://shop.example.com (Django's URL validator wants a real TLD)."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "shop.example.com"]


def _post(user, path, body, **extra):
    return client_for(user).post(path, body, format="json", HTTP_HOST="shop.example.com", **extra)


def test_checkout_session_request_and_response(catalog, alice, stub_stripe, monkeypatch, settings):
    _, customer = billing_customer_ensure(user=alice)
    _point_stripe_at(stub_stripe, monkeypatch)
    stub_stripe.reply = {
        "id": "cs_test_123",
        "object": "checkout.session",
        "url": "https://checkout.stripe.com/c/pay/cs_test_123",
        "expires_at": 1_900_000_000,
    }

    response = _post(
        alice,
        "/api/v1/checkout-sessions/",
        {
            "price": catalog["team"].stripe_price_id,
            "quantity": 3,
            "success_url": "https://shop.example.com/billing/done?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://shop.example.com/pricing",
        },
        HTTP_IDEMPOTENCY_KEY="client-retry-1",
    )

    assert response.status_code == 201, response.content
    assert response.json() == {
        "id": "cs_test_123",
        "url": "https://checkout.stripe.com/c/pay/cs_test_123",
    }
    (sent,) = stub_stripe.requests
    assert sent["path"] == "/v1/checkout/sessions"
    assert sent["headers"]["Authorization"] == f"Bearer {settings.STRIPE_SECRET_KEY}"
    key = sent["headers"]["Idempotency-Key"]
    assert key.startswith("checkout-session-")
    assert sent["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in sent["form"].items()}
    assert form == {
        "mode": "subscription",
        "customer": customer.id,
        "client_reference_id": str(alice.pk),
        "line_items[0][price]": catalog["team"].stripe_price_id,
        "line_items[0][quantity]": "3",
        "success_url": "https://shop.example.com/billing/done?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.example.com/pricing",
        "subscription_data[metadata][billing_customer]": form[
            "subscription_data[metadata][billing_customer]"
        ],
        "subscription_data[trial_period_days]": "14",
    }

    # The same client retry sends the same key (Stripe replays); a new request a new one.
    for idem in ("client-retry-1", "client-retry-2"):
        _post(
            alice,
            "/api/v1/checkout-sessions/",
            {
                "price": catalog["team"].stripe_price_id,
                "quantity": 3,
                "success_url": "https://shop.example.com/billing/done?session={CHECKOUT_SESSION_ID}",
                "cancel_url": "https://shop.example.com/pricing",
            },
            HTTP_IDEMPOTENCY_KEY=idem,
        )
    keys = [r["headers"]["Idempotency-Key"] for r in stub_stripe.requests]
    assert keys[1] == keys[0] and keys[2] != keys[0]


def test_billing_portal_session_request_and_response(alice, stub_stripe, monkeypatch, settings):
    _, customer = billing_customer_ensure(user=alice)
    _point_stripe_at(stub_stripe, monkeypatch)
    stub_stripe.reply = {
        "id": "bps_123",
        "object": "billing_portal.session",
        "url": "https://billing.stripe.com/p/session/bps_123",
    }

    response = _post(
        alice,
        "/api/v1/billing-portal-sessions/",
        {"return_url": "https://shop.example.com/account"},
    )

    assert response.status_code == 201, response.content
    assert response.json()["url"] == "https://billing.stripe.com/p/session/bps_123"
    (sent,) = stub_stripe.requests
    assert sent["path"] == "/v1/billing_portal/sessions"
    assert sent["headers"]["Authorization"] == f"Bearer {settings.STRIPE_SECRET_KEY}"
    assert sent["headers"]["Idempotency-Key"].startswith("portal-session-")
    assert {k: v[0] for k, v in sent["form"].items()} == {
        "customer": customer.id,
        "return_url": "https://shop.example.com/account",
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/phish",
        "//evil.example/phish",
        "javascript:alert(1)",
        "http://shop.example.com/account",  # plain http outside DEBUG
        "not a url",
    ],
)
def test_redirect_urls_must_stay_on_allowed_origins(alice, stub_stripe, monkeypatch, url):
    _point_stripe_at(stub_stripe, monkeypatch)
    response = _post(alice, "/api/v1/billing-portal-sessions/", {"return_url": url})
    assert "return_url" in error_of(response, 400, "validation_error")["fields"]
    assert stub_stripe.requests == []


def test_cors_allowed_origins_are_accepted_as_redirect_targets(
    alice, stub_stripe, monkeypatch, settings
):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    billing_customer_ensure(user=alice)
    _point_stripe_at(stub_stripe, monkeypatch)
    stub_stripe.reply = {"id": "bps_1", "url": "https://billing.stripe.com/p/session/bps_1"}
    response = _post(
        alice,
        "/api/v1/billing-portal-sessions/",
        {"return_url": "https://app.example.com/settings"},
    )
    assert response.status_code == 201, response.content


def test_checkout_for_an_unknown_price_is_400_without_calling_stripe(
    alice, stub_stripe, monkeypatch
):
    _point_stripe_at(stub_stripe, monkeypatch)
    response = _post(
        alice,
        "/api/v1/checkout-sessions/",
        {
            "price": "price_nope",
            "success_url": "https://shop.example.com/ok",
            "cancel_url": "https://shop.example.com/no",
        },
    )
    assert "price" in error_of(response, 400)["fields"]
    assert stub_stripe.requests == []
