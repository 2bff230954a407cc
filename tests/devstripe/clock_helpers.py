"""Customers on a Stripe test clock in the fake, and reading the fake's events."""

from __future__ import annotations

import calendar
import uuid
from typing import Any

import stripe

# 2030-01-01T00:00:00Z; January has 31 days, so the first monthly period is 2 678 400 s.
JAN_1 = calendar.timegm((2030, 1, 1, 0, 0, 0))
FEB_1 = calendar.timegm((2030, 2, 1, 0, 0, 0))
MAR_1 = calendar.timegm((2030, 3, 1, 0, 0, 0))
APR_1 = calendar.timegm((2030, 4, 1, 0, 0, 0))
DAY = 86400


def key(purpose: str) -> str:
    return f"test-{purpose}-{uuid.uuid4().hex}"


def make_clock(frozen_time: int = JAN_1) -> Any:
    return stripe.test_helpers.TestClock.create(frozen_time=frozen_time, name="renewals")


def advance(clock: Any, frozen_time: int) -> Any:
    return stripe.test_helpers.TestClock.advance(clock.id, frozen_time=frozen_time)


def make_price(unit_amount: int, name: str = "Team") -> Any:
    product = stripe.Product.create(name=name, idempotency_key=key("prod"))
    return stripe.Price.create(
        product=product.id,
        currency="usd",
        unit_amount=unit_amount,
        recurring={"interval": "month"},
        idempotency_key=key("price"),
    )


def clock_customer(clock: Any, card: str = "pm_card_visa") -> tuple[Any, Any]:
    customer = stripe.Customer.create(
        email="clock@example.com", test_clock=clock.id, idempotency_key=key("cus")
    )
    pm = stripe.PaymentMethod.attach(card, customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    return customer, pm


def subscribe(customer: Any, pm: Any, price: Any, **extra: Any) -> Any:
    return stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": price.id}],
        default_payment_method=pm.id,
        idempotency_key=key("sub"),
        **extra,
    )


def change_price(sub: Any, price: Any, **extra: Any) -> Any:
    item_id = stripe.Subscription.retrieve(sub.id)["items"].data[0].id
    return stripe.Subscription.modify(
        sub.id, items=[{"id": item_id, "price": price.id}], idempotency_key=key("chg"), **extra
    )


def events(*, after: set[str] | None = None) -> list[dict[str, Any]]:
    """The fake's events as raw JSON, in the order they happened (minus the ids in ``after``)."""
    data = stripe.Event.list(limit=100).last_response.data["data"]
    return [e for e in data if not after or e["id"] not in after]


def invoices(sub: Any) -> list[dict[str, Any]]:
    """The subscription's invoices as raw JSON, oldest first."""
    page = stripe.Invoice.list(subscription=sub.id, limit=100).last_response.data["data"]
    return sorted(page, key=lambda i: (i["created"], i["id"]))
