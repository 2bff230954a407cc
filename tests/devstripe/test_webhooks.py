"""Signed webhooks: our signing helper, dj-stripe's verification, and the fake's deliveries."""

from __future__ import annotations

import time

import pytest
import stripe
from djstripe import models as djm

from devstripe.webhooks import signature_header
from subscriptions.models import WebhookEvent
from tests.stripe_harness import make_webhook_endpoint, post_signed_event, sign_webhook_payload

SECRET = "whsec_test_secret_for_signatures"


def test_signature_is_accepted_by_stripe_verify_header():
    payload = b'{"id": "evt_1", "object": "event"}'
    header = sign_webhook_payload(payload, SECRET)

    assert stripe.WebhookSignature.verify_header(payload.decode(), header, SECRET, tolerance=300)
    assert header == signature_header(payload, SECRET, int(header.split(",")[0][2:]))


@pytest.mark.parametrize(
    ("payload", "secret", "age"),
    [
        (b'{"id": "evt_2", "object": "event"}', SECRET, 0),  # payload changed after signing
        (b'{"id": "evt_1", "object": "event"}', "whsec_other", 0),  # another secret
        (b'{"id": "evt_1", "object": "event"}', SECRET, 3600),  # too old
    ],
)
def test_signature_is_rejected_when_anything_differs(payload, secret, age):
    signed = b'{"id": "evt_1", "object": "event"}'
    header = sign_webhook_payload(signed, SECRET, timestamp=int(time.time()) - age)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload.decode(), header, secret, tolerance=300)


def _customer_created_event(customer) -> dict:
    return {
        "id": "evt_test_customer_created",
        "object": "event",
        "api_version": "2026-05-27.dahlia",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "customer.created",
        "data": {"object": customer.to_dict()},
    }


def test_signed_event_posted_with_the_test_client_is_verified_and_processed(
    stripe_fake, client, django_capture_on_commit_callbacks, celery_eager
):
    endpoint = make_webhook_endpoint()
    customer = stripe.Customer.create(email="hook@example.com")

    # Our inbox acknowledges first and processes on commit (a Celery task, eager here).
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signed_event(client, endpoint, _customer_created_event(customer))

    assert response.status_code == 200
    event = djm.Event.objects.get(id="evt_test_customer_created")
    assert event.type == "customer.created"
    assert djm.Customer.objects.get(id=customer.id).email == "hook@example.com"


def test_event_with_a_bad_signature_is_refused(stripe_fake, client):
    endpoint = make_webhook_endpoint()
    customer = stripe.Customer.create(email="forged@example.com")

    response = post_signed_event(
        client, endpoint, _customer_created_event(customer), secret="whsec_forged"
    )

    assert response.status_code == 400
    assert not djm.Event.objects.exists()
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_fake_delivers_signed_events_to_a_live_server(
    stripe_fake, live_server, transactional_db, celery_eager
):
    endpoint = make_webhook_endpoint(url=live_server.url + "/stripe/webhook/")
    stripe_fake.register_webhook(endpoint.url, endpoint.secret)

    customer = stripe.Customer.create(email="live@example.com")
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    product = stripe.Product.create(name="Live")
    price = stripe.Price.create(
        product=product.id, currency="usd", unit_amount=700, recurring={"interval": "month"}
    )
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": price.id}], default_payment_method=pm.id
    )
    stripe.Subscription.cancel(sub.id)

    deleted = stripe_fake.wait_for_delivery(lambda d: d["type"] == "customer.subscription.deleted")
    deliveries = stripe_fake.deliveries()
    failures = set(WebhookEvent.objects.exclude(last_error="").values_list("type", "last_error"))
    assert {d["status"] for d in deliveries} == {200}, (failures, deliveries)
    types = [d["type"] for d in deliveries]
    # Delivered in the order they happened.
    assert types.index("invoice.paid") < types.index("customer.subscription.deleted")
    assert types.index("customer.subscription.created") < types.index(
        "customer.subscription.deleted"
    )

    event = djm.Event.objects.get(id=deleted["event"])
    assert event.type == "customer.subscription.deleted"
    assert event.data["object"]["id"] == sub.id
    assert djm.Event.objects.filter(type="invoice.paid").exists()
    assert djm.Subscription.objects.get(id=sub.id).customer.id == customer.id
    assert djm.Invoice.objects.get(id=sub.latest_invoice).status == "paid"
    inbox = WebhookEvent.objects.all()
    assert inbox.count() == len(deliveries)
    assert {e.status for e in inbox} == {WebhookEvent.Status.SUCCEEDED}
    assert inbox.first().payload["object"] == "event"
