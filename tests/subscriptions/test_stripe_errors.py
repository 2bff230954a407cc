# ruff: noqa: F811  (pytest fixtures imported from api_helpers are parameters here)
"""Stripe errors never become a 500: declines 402, invalid requests 400 naming our field (and
Stripe's param), Stripe unavailable 503 with Retry-After, staff actions show Stripe's message.

Everything goes through the fake Stripe (or a closed port / a tiny server answering errors in
its place), never by patching our code."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe
from django.contrib.messages import get_messages
from django.urls import reverse
from djstripe import models as djm

from subscriptions.models import BillingCustomer
from tests.accounts.factories import UserFactory
from tests.subscriptions.api_helpers import (  # noqa: F401 (fixtures)
    _clear_throttles,
    alice,
    catalog,
    client_for,
    error_of,
)
from tests.subscriptions.effects_helpers import make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db

SUBS = "/api/v1/subscriptions/"


def _subscribe(user: Any, price: Any, **extra: Any) -> Any:
    body = {"price": price.stripe_price_id, "payment_method": "pm_card_visa", **extra}
    return client_for(user).post(SUBS, body, format="json")


# --- Stripe answering in its place ---------------------------------------------------------
def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Answer(BaseHTTPRequestHandler):
    status = 500
    body: dict[str, Any] = {}
    headers_out: dict[str, str] = {}

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        payload = json.dumps(self.body).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in self.headers_out.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stripe_answering(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``stripe_answering(status, body, headers)`` points the stripe client at a server that
    answers every request so; ``stripe_answering(None)`` at a closed port."""
    servers: list[ThreadingHTTPServer] = []
    monkeypatch.setattr(stripe, "max_network_retries", 0)

    def point(status: int | None, body: dict[str, Any] | None = None, headers: Any = None) -> None:
        if status is None:
            monkeypatch.setattr(stripe, "api_base", f"http://127.0.0.1:{_closed_port()}")
            return
        handler = type(
            "Handler",
            (_Answer,),
            {"status": status, "body": body or {}, "headers_out": headers or {}},
        )
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        monkeypatch.setattr(stripe, "api_base", f"http://127.0.0.1:{server.server_port}")

    yield point
    for server in servers:
        server.shutdown()
        server.server_close()


# --- the API -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("card", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeCustomerFail", "generic_decline"),
    ],
)
def test_a_decline_is_402_with_stripes_decline_code(catalog, alice, card, decline_code):
    error = error_of(_subscribe(alice, catalog["basic"], payment_method=card), 402)
    assert error["code"] == "card_declined"
    assert error["decline_code"] == decline_code
    assert not djm.Subscription.objects.exists()


def test_a_price_missing_in_stripe_is_400_naming_price_and_stripes_param(catalog, alice):
    price = catalog["basic"]
    price.stripe_price_id = "price_gone"  # our catalog knows it, Stripe does not
    price.save(update_fields=["stripe_price_id"])
    error = error_of(_subscribe(alice, price), 400, "validation_error")
    assert error["fields"] == {"price": ["No such price: 'price_gone'"]}
    assert error["param"] == "items[0][price]"


def test_an_unknown_coupon_or_payment_method_is_400_naming_our_field(catalog, alice):
    error = error_of(_subscribe(alice, catalog["basic"], coupon="NOPE"), 400)
    assert list(error["fields"]) == ["coupon"]
    assert error["param"] == "discounts[0][coupon]"
    assert "No such coupon: 'NOPE'" in error["message"]

    error = error_of(_subscribe(alice, catalog["basic"], payment_method="pm_nope"), 400)
    assert list(error["fields"]) == ["payment_method"]


def test_a_subscription_gone_from_stripe_is_400_not_500(catalog, alice, stripe_fake):
    created = _subscribe(alice, catalog["basic"])
    assert created.status_code == 201
    sub_id = created.json()["id"]
    stripe_fake.flush()  # Stripe no longer has it; our mirror still does
    response = client_for(alice).post(f"{SUBS}{sub_id}/cancel", {"at_period_end": False})
    error = error_of(response, 400, "validation_error")
    assert list(error["fields"]) == ["subscription"]


@pytest.mark.parametrize(
    ("status", "body", "headers", "retry_after"),
    [
        (None, None, None, "30"),  # connection refused
        (500, {"error": {"type": "api_error", "message": "Boom"}}, None, "30"),
        (429, {"error": {"type": "invalid_request_error", "code": "rate_limit",
                         "message": "Too many requests"}}, {"Retry-After": "7"}, "7"),
        (401, {"error": {"type": "invalid_request_error",
                         "message": "Invalid API Key provided"}}, None, "30"),
    ],
)  # fmt: skip
def test_stripe_unavailable_is_503_with_retry_after(
    catalog, alice, stripe_answering, status, body, headers, retry_after
):
    price = catalog["basic"]
    stripe_answering(status, body, headers)
    response = _subscribe(alice, price)
    error = error_of(response, 503, "stripe_unavailable")
    assert response["Retry-After"] == retry_after
    assert error["retry_after"] == int(retry_after)


def test_a_subscription_action_with_stripe_down_is_503(catalog, alice, stripe_answering):
    created = _subscribe(alice, catalog["basic"])
    sub_id = created.json()["id"]
    stripe_answering(None)
    response = client_for(alice).post(f"{SUBS}{sub_id}/cancel", {"at_period_end": True})
    error_of(response, 503, "stripe_unavailable")
    assert response["Retry-After"]


def test_the_schema_documents_402_and_503_with_the_error_shape(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    subscribe = schema["paths"]["/api/v1/subscriptions/"]["post"]["responses"]
    for status in ("400", "402", "503"):
        ref = subscribe[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error"
    change = schema["paths"]["/api/v1/subscriptions/{subscription_id}/change"]["post"]
    assert {"402", "409", "503"} <= set(change["responses"])
    body = schema["components"]["schemas"]["ErrorBody"]["properties"]
    assert {"code", "message", "fields", "param", "decline_code", "retry_after"} <= set(body)


# --- staff actions -------------------------------------------------------------------------
@pytest.fixture
def staff_client(client: Any) -> Any:
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def paying(stripe_fake: Any) -> tuple[BillingCustomer, Any]:
    customer, pm = make_customer(email="staff-errors@example.com")
    sub = subscribe(customer, pm, make_price(unit_amount=1000))
    djm.Subscription.sync_from_stripe_data(stripe.Subscription.retrieve(sub.id))
    row = BillingCustomer.objects.create(
        user=UserFactory(email="staff-errors@example.com"), stripe_customer_id=customer.id
    )
    return row, sub


def _action(client: Any, row: BillingCustomer, action: str, object_id: str, data: Any) -> Any:
    url = reverse("admin:subscriptions_billingcustomer_action", args=[row.pk, action, object_id])
    return client.post(url, data)


def _errors(response: Any) -> list[str]:
    return [m.message for m in get_messages(response.wsgi_request) if m.level_tag == "error"]


def test_a_stripe_refusal_on_a_staff_action_is_an_admin_error_message(staff_client, paying):
    row, sub = paying
    response = _action(staff_client, row, "apply-coupon", sub.id, {"coupon_id": "NOPE"})
    assert response.status_code == 200
    assert _errors(response) == ["No such coupon: 'NOPE'"]


@pytest.mark.parametrize("action", ["cancel", "resync", "apply-coupon"])
def test_stripe_down_on_a_staff_action_is_an_admin_error_message(
    staff_client, paying, stripe_answering, action
):
    row, sub = paying
    stripe_answering(None)
    response = _action(staff_client, row, action, sub.id, {"coupon_id": "X"})
    assert response.status_code == 200
    assert _errors(response) == [
        "The payment provider is not available right now; try again shortly."
    ]
