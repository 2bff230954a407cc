"""Catalog, customers, subscriptions, test clocks, webhook endpoints and events conform.

Products, prices (per-unit, tiered, one-time), customers and their payment methods,
multi-item subscriptions (with a trial, a discount, an item change, cancel at period end),
their items, test clocks and webhook endpoints are driven through the real ``stripe`` client;
every response body of those types (nested ones included) and every event about them is held
to the installed stripe-python's resource classes (``conformance.py``). Invoices, charges and
the other billing objects the flow creates are another suite's business (``test_conformance``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import stripe

from tests.devstripe import conformance
from tests.devstripe.clock_helpers import DAY, FEB_1, JAN_1, MAR_1, advance, key, make_clock
from tests.devstripe.recording import all_events

pytestmark = pytest.mark.django_db

OUR_TYPES = {
    "product",
    "price",
    "plan",
    "customer",
    "payment_method",
    "subscription",
    "subscription_item",
    "test_helpers.test_clock",
    "webhook_endpoint",
    "discount",
    "event",
}


def _objects(body: Any) -> list[dict[str, Any]]:
    """A response body, or each resource of a list page, of one of our types (not events:
    they are checked with what they carry) and not a deletion's ``{id, object, deleted}``
    (Stripe's ``deleted_<object>``, which stripe-python folds into the resource class)."""
    if not isinstance(body, dict) or body.get("deleted") is True:
        return []
    if body.get("object") in ("list", "search_result"):
        return [o for item in body.get("data") or [] for o in _objects(item)]
    return [body] if body.get("object") in OUR_TYPES - {"event"} else []


def _run_flow() -> dict[str, Any]:
    product = stripe.Product.create(
        name="Catalog", description="Seats", idempotency_key=key("prod")
    )
    seat = stripe.Price.create(
        product=product.id, currency="usd", unit_amount=1500,
        recurring={"interval": "month"}, lookup_key="cs_seat", idempotency_key=key("price"),
    )  # fmt: skip
    tiered = stripe.Price.create(
        product=product.id, currency="usd", billing_scheme="tiered", tiers_mode="graduated",
        tiers=[{"up_to": 5, "unit_amount": 1000}, {"up_to": "inf", "unit_amount": 800}],
        recurring={"interval": "month"}, expand=["tiers"], idempotency_key=key("tiered"),
    )  # fmt: skip
    stripe.Price.create(
        product_data={"name": "Setup"}, currency="usd", unit_amount=5000,
        idempotency_key=key("one-time"),
    )  # fmt: skip
    stripe.Price.retrieve(tiered.id, expand=["tiers", "product"])
    stripe.Price.list(product=product.id, active=True)
    stripe.Price.modify(seat.id, nickname="Seat")
    stripe.Product.modify(product.id, metadata={"tier": "pro"})
    stripe.Product.retrieve(product.id)
    stripe.Product.list(limit=10)

    customer = stripe.Customer.create(email="catalog@example.com", idempotency_key=key("cus"))
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    stripe.Customer.retrieve(customer.id)
    stripe.Customer.list(limit=10)
    listed = stripe.Customer.list_payment_methods(customer.id)
    assert [m.id for m in listed.data] == [pm.id]
    stripe.PaymentMethod.list(customer=customer.id, type="card")
    stripe.PaymentMethod.retrieve(pm.id)

    stripe.Coupon.create(id="CS_HALF", percent_off=50, duration="forever")
    sub = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": seat.id, "quantity": 2}, {"price": tiered.id, "quantity": 7}],
        default_payment_method=pm.id, idempotency_key=key("sub"),
    )  # fmt: skip
    items = stripe.SubscriptionItem.list(subscription=sub.id)
    assert {i.price.id: i.quantity for i in items.data} == {seat.id: 2, tiered.id: 7}
    item = sub["items"]["data"][0]
    stripe.SubscriptionItem.retrieve(item.id)
    stripe.Subscription.modify(
        sub.id, items=[{"id": item.id, "quantity": 3}], proration_behavior="create_prorations",
        idempotency_key=key("qty"),
    )  # fmt: skip
    discounted = stripe.Subscription.modify(sub.id, discounts=[{"coupon": "CS_HALF"}])
    [discount_id] = discounted.last_response.data["discounts"]
    expanded = stripe.Subscription.retrieve(sub.id, expand=["discounts.source.coupon"])
    [discount] = expanded.last_response.data["discounts"]
    assert discount["id"] == discount_id
    assert discount["source"]["coupon"]["percent_off"] == 50
    stripe.Subscription.list(customer=customer.id)
    stripe.Subscription.modify(sub.id, cancel_at_period_end=True)

    trial = stripe.Subscription.create(
        customer=customer.id, items=[{"price": seat.id}], trial_period_days=14,
        default_payment_method=pm.id, idempotency_key=key("trial"),
    )  # fmt: skip
    stripe.Subscription.cancel(trial.id)

    clock = make_clock(JAN_1)
    clocked = stripe.Customer.create(
        email="clock@example.com", test_clock=clock.id, idempotency_key=key("clock-cus")
    )
    clocked_pm = stripe.PaymentMethod.attach("pm_card_visa", customer=clocked.id)
    on_clock = stripe.Subscription.create(
        customer=clocked.id, items=[{"price": seat.id}], default_payment_method=clocked_pm.id,
        trial_period_days=7, idempotency_key=key("clock-sub"),
    )  # fmt: skip
    advance(clock, JAN_1 + 8 * DAY)
    stripe.Subscription.modify(on_clock.id, cancel_at_period_end=True)
    advance(clock, MAR_1)
    stripe.test_helpers.TestClock.retrieve(clock.id)
    stripe.test_helpers.TestClock.list()

    endpoint = stripe.WebhookEndpoint.create(
        url="https://example.com/stripe/webhook/", enabled_events=["*"],
        api_version=stripe.api_version, idempotency_key=key("we"),
    )  # fmt: skip
    stripe.WebhookEndpoint.retrieve(endpoint.id)
    stripe.WebhookEndpoint.list()
    stripe.Subscription.cancel(sub.id)
    stripe.test_helpers.TestClock.delete(clock.id)
    stripe.WebhookEndpoint.delete(endpoint.id)
    return {"clock": clock, "on_clock": on_clock}


def test_our_objects_and_their_events_conform_to_the_pinned_api_version(recorder):
    _run_flow()
    events = all_events()
    bodies = [
        obj for _m, _u, status, body in recorder.bodies if status < 400 for obj in _objects(body)
    ]
    ours = [e for e in events if e["data"]["object"].get("object") in OUR_TYPES]
    found = conformance.all_violations([*bodies, *ours])
    report = {kind: sorted(set(problems)) for kind, problems in found.items()}
    assert report == {}, json.dumps(report, indent=1)

    kinds = {b["object"] for b in bodies} | {e["data"]["object"]["object"] for e in ours}
    assert OUR_TYPES - {"plan", "discount", "event"} <= kinds, kinds  # plans, discounts: nested


def test_every_event_envelope_conforms_and_speaks_our_api_version(recorder):
    _run_flow()
    events = all_events()
    envelopes = [conformance.violations(e, f"event {e['type']}") for e in events]
    assert sorted({p for problems in envelopes for p in problems}) == []
    assert {e["api_version"] for e in events} == {stripe.api_version}
    assert all(e["request"] == {"id": None, "idempotency_key": None} for e in events)


def test_periods_live_on_the_items(recorder):
    clock = make_clock(JAN_1)
    customer = stripe.Customer.create(email="periods@example.com", test_clock=clock.id)
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    seat = stripe.Price.create(
        product_data={"name": "Seat"}, currency="usd", unit_amount=1000,
        recurring={"interval": "month"},
    )  # fmt: skip
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": seat.id}], default_payment_method=pm.id
    )
    raw = sub.last_response.data
    assert "current_period_end" not in raw
    [item] = raw["items"]["data"]
    assert (item["current_period_start"], item["current_period_end"]) == (JAN_1, FEB_1)
    advance(clock, FEB_1 + 3600)
    [item] = stripe.SubscriptionItem.list(subscription=sub.id).data
    assert (item.current_period_start, item.current_period_end) == (FEB_1, MAR_1)


def test_the_last_tier_is_unbounded(recorder):
    tiered = stripe.Price.create(
        product_data={"name": "Tiered"}, currency="usd", billing_scheme="tiered",
        tiers_mode="volume", recurring={"interval": "month"}, expand=["tiers"],
        tiers=[{"up_to": 10, "unit_amount": 500}, {"up_to": "inf", "unit_amount": 400}],
    )  # fmt: skip
    assert [t["up_to"] for t in tiered.last_response.data["tiers"]] == [10, None]
    customer = stripe.Customer.create(email="tiers@example.com")
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": tiered.id, "quantity": 12}],
        default_payment_method=pm.id,
    )  # fmt: skip
    plan = sub.last_response.data["items"]["data"][0]["plan"]
    assert [t["up_to"] for t in plan["tiers"]] == [10, None]
    invoice = stripe.Invoice.retrieve(sub.latest_invoice)
    assert invoice.amount_due == 12 * 400
