"""Demo catalog and customers, created in Stripe (the local fake under `make run`), synced back.

Idempotent: objects are found again by stable handles (product ids, price lookup keys,
customer emails) before anything is created, and every create carries an idempotency key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import stripe
from djstripe import models as djstripe_models
from djstripe.settings import djstripe_settings

ORDER = 20

PRODUCTS = [
    ("prod_demo_starter", "Starter", "For individuals: 1 seat, 10k API calls a month."),
    ("prod_demo_team", "Team", "Per seat, graduated: cheaper seats as the team grows."),
    ("prod_demo_scale", "Scale", "Volume pricing for large organisations, billed yearly."),
]

PRICES: list[dict[str, Any]] = [
    {
        "lookup_key": "demo_starter_monthly",
        "product": "prod_demo_starter",
        "currency": "usd",
        "unit_amount": 1900,
        "recurring": {"interval": "month"},
    },
    {
        "lookup_key": "demo_starter_yearly",
        "product": "prod_demo_starter",
        "currency": "usd",
        "unit_amount": 19000,
        "recurring": {"interval": "year"},
    },
    {
        "lookup_key": "demo_team_seats_monthly",
        "product": "prod_demo_team",
        "currency": "usd",
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "tiers": [
            {"up_to": 5, "unit_amount": 1500},
            {"up_to": 20, "unit_amount": 1200},
            {"up_to": "inf", "unit_amount": 900},
        ],
        "recurring": {"interval": "month"},
    },
    {
        "lookup_key": "demo_scale_seats_yearly",
        "product": "prod_demo_scale",
        "currency": "eur",
        "billing_scheme": "tiered",
        "tiers_mode": "volume",
        "tiers": [
            {"up_to": 50, "unit_amount": 9000, "flat_amount": 50000},
            {"up_to": "inf", "unit_amount": 7000, "flat_amount": 50000},
        ],
        "recurring": {"interval": "year"},
    },
]

# (email, name, price lookup key, quantity)
CUSTOMERS = [
    ("ada@demo.example", "Ada Lovelace", "demo_starter_monthly", 1),
    ("grace@demo.example", "Grace Hopper", "demo_starter_yearly", 1),
    ("alan@demo.example", "Alan Turing", "demo_team_seats_monthly", 8),
    ("edsger@demo.example", "Edsger Dijkstra", "demo_team_seats_monthly", 3),
    ("barbara@demo.example", "Barbara Liskov", "demo_scale_seats_yearly", 60),
]


def _api_key() -> str:
    return djstripe_settings.STRIPE_SECRET_KEY


def _find(items: Any, predicate: Callable[[Any], bool]) -> Any | None:
    return next((obj for obj in items.auto_paging_iter() if predicate(obj)), None)


def _ensure_product(product_id: str, name: str, description: str) -> Any:
    try:
        return stripe.Product.retrieve(product_id, api_key=_api_key())
    except stripe.InvalidRequestError:
        return stripe.Product.create(
            id=product_id,
            name=name,
            description=description,
            metadata={"demo": "1"},
            api_key=_api_key(),
            idempotency_key=f"demo:product:{product_id}",
        )


def _ensure_price(spec: dict[str, Any]) -> Any:
    existing = _find(
        stripe.Price.list(product=spec["product"], limit=100, api_key=_api_key()),
        lambda p: p.get("lookup_key") == spec["lookup_key"],
    )
    if existing is not None:
        return existing
    return stripe.Price.create(
        **spec, api_key=_api_key(), idempotency_key=f"demo:price:{spec['lookup_key']}"
    )


def _ensure_customer(email: str, name: str) -> Any:
    existing = _find(
        stripe.Customer.list(email=email, limit=100, api_key=_api_key()),
        lambda c: c.get("email") == email,
    )
    if existing is not None:
        return existing
    return stripe.Customer.create(
        email=email,
        name=name,
        metadata={"demo": "1"},
        api_key=_api_key(),
        idempotency_key=f"demo:customer:{email}",
    )


def _ensure_payment_method(customer: Any) -> str:
    methods = stripe.PaymentMethod.list(customer=customer.id, type="card", api_key=_api_key())
    if methods.data:
        return methods.data[0].id
    method = stripe.PaymentMethod.create(
        type="card",
        card={"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        api_key=_api_key(),
        idempotency_key=f"demo:pm:{customer.id}",
    )
    stripe.PaymentMethod.attach(
        method.id,
        customer=customer.id,
        api_key=_api_key(),
        idempotency_key=f"demo:pm-attach:{customer.id}",
    )
    stripe.Customer.modify(
        customer.id,
        invoice_settings={"default_payment_method": method.id},
        api_key=_api_key(),
        idempotency_key=f"demo:pm-default:{customer.id}",
    )
    return method.id


def _ensure_subscription(customer: Any, price: Any, quantity: int, payment_method: str) -> Any:
    existing = stripe.Subscription.list(customer=customer.id, status="all", api_key=_api_key())
    if existing.data:
        return existing.data[0]
    return stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": price.id, "quantity": quantity}],
        default_payment_method=payment_method,
        metadata={"demo": "1"},
        api_key=_api_key(),
        idempotency_key=f"demo:subscription:{customer.id}:{price.id}",
    )


def seed(*, out: Callable[[str], None]) -> None:
    for product_id, name, description in PRODUCTS:
        djstripe_models.Product.sync_from_stripe_data(
            _ensure_product(product_id, name, description), api_key=_api_key()
        )
    prices = {}
    for spec in PRICES:
        price = _ensure_price(spec)
        djstripe_models.Price.sync_from_stripe_data(price, api_key=_api_key())
        prices[spec["lookup_key"]] = price
    for email, name, lookup_key, quantity in CUSTOMERS:
        customer = _ensure_customer(email, name)
        payment_method = _ensure_payment_method(customer)
        subscription = _ensure_subscription(customer, prices[lookup_key], quantity, payment_method)
        djstripe_models.Customer.sync_from_stripe_data(customer, api_key=_api_key())
        djstripe_models.Subscription.sync_from_stripe_data(subscription, api_key=_api_key())
        for invoice in stripe.Invoice.list(
            subscription=subscription.id, api_key=_api_key()
        ).auto_paging_iter():
            djstripe_models.Invoice.sync_from_stripe_data(invoice, api_key=_api_key())
    out(f"  stripe: {len(PRODUCTS)} products, {len(PRICES)} prices, {len(CUSTOMERS)} subscriptions")
