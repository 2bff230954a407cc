"""Helpers for the effects tests: real Stripe objects on the fake, their events, dj-stripe."""

from __future__ import annotations

import uuid
from typing import Any

import stripe
from djstripe import models as djm


def key(purpose: str) -> str:
    return f"test-{purpose}-{uuid.uuid4().hex}"


class EventFeed:
    """Reads the fake's events in the order they happened and processes the new ones."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def new_events(self) -> list[dict[str, Any]]:
        page = stripe.Event.list(limit=100)
        # Raw JSON (the library would turn amounts into Decimal); the fake lists oldest first.
        events = sorted(page.last_response.data["data"], key=lambda e: e["created"])
        fresh = [e for e in events if e["id"] not in self.seen]
        self.seen.update(e["id"] for e in fresh)
        return fresh

    def process_new(self, *, types: set[str] | None = None) -> list[dict[str, Any]]:
        """Process every new event through dj-stripe (as the webhook inbox does)."""
        processed = []
        for event in self.new_events():
            if types is None or event["type"] in types:
                djm.Event.process(event)
                processed.append(event)
        return processed


def make_price(*, unit_amount: int = 1000, interval: str = "month") -> Any:
    product = stripe.Product.create(name="Team", idempotency_key=key("prod"))
    return stripe.Price.create(
        product=product.id,
        currency="usd",
        unit_amount=unit_amount,
        recurring={"interval": interval},
        idempotency_key=key("price"),
    )


def make_customer(*, card: str = "pm_card_visa", email: str = "buyer@example.com") -> Any:
    customer = stripe.Customer.create(email=email, idempotency_key=key("cus"))
    pm = stripe.PaymentMethod.attach(card, customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    return customer, pm


def subscribe(customer: Any, pm: Any, price: Any, *, quantity: int = 1, **extra: Any) -> Any:
    return stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": price.id, "quantity": quantity}],
        default_payment_method=pm.id,
        idempotency_key=key("sub"),
        **extra,
    )


def set_quantity(sub: Any, quantity: int) -> Any:
    item_id = stripe.Subscription.retrieve(sub.id)["items"]["data"][0]["id"]
    return stripe.Subscription.modify(
        sub.id, items=[{"id": item_id, "quantity": quantity}], idempotency_key=key("qty")
    )
