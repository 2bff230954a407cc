"""dj-stripe 2.11 syncs every object type we use from the fake Stripe, over HTTP."""

from __future__ import annotations

import pytest
import stripe
from djstripe import models as djm

pytestmark = pytest.mark.django_db


def _key(name: str) -> str:
    return f"test-{name}"


@pytest.fixture
def product(stripe_fake):
    return stripe.Product.create(name="Pro", metadata={"tier": "pro"}, idempotency_key=_key("prod"))


@pytest.fixture
def monthly(product):
    return stripe.Price.create(
        product=product.id,
        currency="usd",
        unit_amount=1500,
        recurring={"interval": "month"},
        lookup_key="pro_monthly",
        nickname="Pro monthly",
        metadata={"plan": "pro"},
        idempotency_key=_key("price-monthly"),
    )


@pytest.fixture
def customer_with_card(stripe_fake):
    customer = stripe.Customer.create(email="buyer@example.com", idempotency_key=_key("cus"))
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    return customer, pm


def test_account_and_api_key_rows_exist(stripe_fake, settings):
    api_key = djm.APIKey.objects.get(secret=settings.STRIPE_SECRET_KEY)
    assert api_key.djstripe_owner_account == stripe_fake.account
    assert stripe_fake.account.id.startswith("acct_")


def test_product_and_per_unit_price_sync(monthly, stripe_fake):
    price = djm.Price.sync_from_stripe_data(
        stripe.Price.retrieve(monthly.id, expand=["product", "tiers"]), api_key=stripe_fake.api_key
    )
    assert price.product.name == "Pro"
    assert price.product.metadata == {"tier": "pro"}
    assert price.unit_amount == 1500
    assert price.currency == "usd"
    assert price.lookup_key == "pro_monthly"
    assert price.nickname == "Pro monthly"
    assert price.active is True
    assert price.recurring["interval"] == "month"
    assert price.recurring["usage_type"] == "licensed"
    assert price.djstripe_owner_account == stripe_fake.account
