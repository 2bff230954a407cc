"""dj-stripe 2.11 syncs every object type we use from the fake Stripe, over HTTP."""

from __future__ import annotations

import pytest
import stripe
from djstripe import models as djm

from tests.stripe_harness import three_d_secure_card
from tests.stripe_paths import invoice_charge_id, invoice_payment_intent_id

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


GRADUATED_TIERS = [
    {"up_to": 5, "unit_amount": 1000},
    {"up_to": 10, "unit_amount": 800, "flat_amount": 500},
    {"up_to": "inf", "unit_amount": 500, "flat_amount": 100},
]
VOLUME_TIERS = [
    {"up_to": 10, "unit_amount": 900},
    {"up_to": 50, "unit_amount": 700, "flat_amount": 2000},
    {"up_to": "inf", "unit_amount": 400},
]


def _tiered_price(product, mode, tiers):
    return stripe.Price.create(
        product=product.id,
        currency="usd",
        billing_scheme="tiered",
        tiers_mode=mode,
        tiers=tiers,
        recurring={"interval": "month", "interval_count": 3},
        idempotency_key=_key(f"price-{mode}"),
    )


def _subscribe(customer, items, **extra):
    return stripe.Subscription.create(
        customer=customer.id,
        items=items,
        expand=["latest_invoice"],
        idempotency_key=_key("sub"),
        **extra,
    )


@pytest.mark.parametrize(
    ("mode", "tiers", "quantity", "expected"),
    [
        # 5 x 1000 + (5 x 800 + 500) + (2 x 500 + 100)
        ("graduated", GRADUATED_TIERS, 12, 5000 + 4500 + 1100),
        ("graduated", GRADUATED_TIERS, 5, 5000),
        ("graduated", GRADUATED_TIERS, 6, 5000 + 800 + 500),
        # the whole quantity at the tier it falls into
        ("volume", VOLUME_TIERS, 10, 9000),
        ("volume", VOLUME_TIERS, 11, 11 * 700 + 2000),
        ("volume", VOLUME_TIERS, 51, 51 * 400),
    ],
)
def test_tiered_price_syncs_and_invoices_the_tiered_amount(
    product, customer_with_card, stripe_fake, mode, tiers, quantity, expected
):
    customer, _ = customer_with_card
    stripe_price = _tiered_price(product, mode, tiers)

    price = djm.Price.sync_from_stripe_data(
        stripe.Price.retrieve(stripe_price.id, expand=["tiers"]), api_key=stripe_fake.api_key
    )
    assert price.billing_scheme == "tiered"
    assert price.tiers_mode == mode
    assert [t["up_to"] for t in price.tiers] == [t["up_to"] for t in tiers[:-1]] + [None]
    assert price.recurring["interval_count"] == 3
    assert price.unit_amount is None

    sub = _subscribe(customer, [{"price": stripe_price.id, "quantity": quantity}])
    invoice = djm.Invoice.sync_from_stripe_data(
        stripe.Invoice.retrieve(sub.latest_invoice.id), api_key=stripe_fake.api_key
    )
    assert invoice.total == expected
    assert invoice.stripe_data["amount_paid"] == expected
    assert invoice.status == "paid"


def test_customer_and_attached_card_sync(customer_with_card, stripe_fake):
    stripe_customer, stripe_pm = customer_with_card
    customer = djm.Customer.sync_from_stripe_data(
        stripe.Customer.retrieve(stripe_customer.id), api_key=stripe_fake.api_key
    )
    pm = djm.PaymentMethod.sync_from_stripe_data(
        stripe.PaymentMethod.retrieve(stripe_pm.id), api_key=stripe_fake.api_key
    )
    assert customer.email == "buyer@example.com"
    assert pm.customer == customer
    assert pm.type == "card"
    assert pm.stripe_data["card"]["last4"] == "4242"
    assert customer.default_payment_method == pm


def test_multi_item_subscription_invoice_charge_and_payment_intent_sync(
    product, monthly, customer_with_card, stripe_fake
):
    customer, _ = customer_with_card
    graduated = _tiered_price(product, "graduated", GRADUATED_TIERS)
    graduated = stripe.Price.modify(graduated.id, metadata={"kind": "seats"})
    # Both items share one billing interval in Stripe; use a monthly tiered price here.
    seats = stripe.Price.create(
        product=product.id,
        currency="usd",
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=GRADUATED_TIERS,
        recurring={"interval": "month"},
    )
    stripe_sub = _subscribe(
        customer,
        [{"price": monthly.id, "quantity": 2}, {"price": seats.id, "quantity": 7}],
        metadata={"order": "42"},
    )
    assert stripe_sub.status == "active"

    sub = djm.Subscription.sync_from_stripe_data(
        stripe.Subscription.retrieve(stripe_sub.id), api_key=stripe_fake.api_key
    )
    items = {item.price.id: item for item in sub.items.all()}
    assert set(items) == {monthly.id, seats.id}
    assert items[monthly.id].quantity == 2
    assert items[seats.id].quantity == 7
    assert sub.customer.id == customer.id
    assert sub.stripe_data["status"] == "active"
    assert sub.metadata == {"order": "42"}

    invoice = djm.Invoice.sync_from_stripe_data(
        stripe.Invoice.retrieve(stripe_sub.latest_invoice.id, expand=["discounts"]),
        api_key=stripe_fake.api_key,
    )
    expected = 2 * 1500 + (5 * 1000 + 2 * 800 + 500)
    assert invoice.total == expected
    # dj-stripe 2.11 reads no `subscription` (gone at our API version): it is under parent.
    assert invoice.stripe_data["parent"]["subscription_details"]["subscription"] == sub.id
    assert invoice.discounts == []
    line_ids = [line["id"] for line in invoice.stripe_data["lines"]["data"]]
    lines = djm.LineItem.objects.filter(id__in=line_ids)
    assert sorted(line.stripe_data["amount"] for line in lines) == [3000, 7100]
    # A line names its subscription item under parent (dj-stripe's FK stays empty).
    item_ids = {
        line.stripe_data["parent"]["subscription_item_details"]["subscription_item"]
        for line in lines
    }
    items_of_lines = djm.SubscriptionItem.objects.filter(id__in=item_ids)
    assert {item.price.id for item in items_of_lines} == {monthly.id, seats.id}
    # Nor `charge` / `payment_intent`: the invoice's payment is its invoice payment's.
    intent = djm.PaymentIntent.sync_from_stripe_data(
        stripe.PaymentIntent.retrieve(invoice_payment_intent_id(invoice.id)),
        api_key=stripe_fake.api_key,
    )
    charge = djm.Charge.sync_from_stripe_data(
        stripe.Charge.retrieve(invoice_charge_id(invoice.id)), api_key=stripe_fake.api_key
    )
    assert charge.stripe_data["amount"] == expected
    assert charge.stripe_data["status"] == "succeeded"
    assert intent.stripe_data["status"] == "succeeded"
    assert intent.stripe_data["amount"] == expected


def test_invoice_accepts_the_expansions_dj_stripe_asks_for(
    monthly, customer_with_card, stripe_fake
):
    customer, _ = customer_with_card
    sub = _subscribe(customer, [{"price": monthly.id}])
    data = stripe.Invoice.retrieve(
        sub.latest_invoice.id, expand=["discounts", "lines.data.discounts", "default_tax_rates"]
    )
    assert data.discounts == []
    assert data.default_tax_rates == []
    assert all(line.discounts == [] for line in data.lines.data)
    refetched = djm.Invoice(id=sub.latest_invoice.id).api_retrieve(api_key=stripe_fake.api_key)
    assert refetched["id"] == sub.latest_invoice.id


def test_declined_card_leaves_subscription_incomplete_and_invoice_open(monthly, stripe_fake):
    customer = stripe.Customer.create(email="declined@example.com")
    pm = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=customer.id)
    stripe_sub = _subscribe(customer, [{"price": monthly.id}], default_payment_method=pm.id)
    assert stripe_sub.status == "incomplete"

    invoice = djm.Invoice.sync_from_stripe_data(
        stripe.Invoice.retrieve(stripe_sub.latest_invoice.id), api_key=stripe_fake.api_key
    )
    assert invoice.status == "open"
    assert invoice.stripe_data["amount_paid"] == 0
    charge = stripe.Charge.retrieve(invoice_charge_id(invoice.id))
    assert charge["status"] == "failed"
    assert charge["failure_code"] == "card_declined"

    with pytest.raises(stripe.CardError):
        stripe.Invoice.pay(stripe_sub.latest_invoice.id)


def test_error_if_incomplete_refuses_a_declined_card(monthly, stripe_fake):
    customer = stripe.Customer.create(email="strict@example.com")
    pm = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=customer.id)
    with pytest.raises(stripe.CardError):
        _subscribe(
            customer,
            [{"price": monthly.id}],
            default_payment_method=pm.id,
            payment_behavior="error_if_incomplete",
        )


def test_error_if_incomplete_refuses_a_card_that_needs_authentication(monthly, stripe_fake):
    """Stripe: "if a payment method requires 3DS authentication ... this parameter doesn't
    create a subscription and returns an error instead" (402)."""
    customer = stripe.Customer.create(email="sca@example.com")
    method = stripe.PaymentMethod.attach(three_d_secure_card(), customer=customer.id).id
    with pytest.raises(stripe.CardError) as raised:
        _subscribe(
            customer,
            [{"price": monthly.id}],
            default_payment_method=method,
            payment_behavior="error_if_incomplete",
        )
    assert raised.value.http_status == 402
    assert raised.value.code == "invoice_payment_intent_requires_action"
    assert not stripe.Subscription.list(customer=customer.id).data


def test_allow_incomplete_keeps_a_subscription_waiting_for_authentication(monthly, stripe_fake):
    customer = stripe.Customer.create(email="sca-allowed@example.com")
    method = stripe.PaymentMethod.attach(three_d_secure_card(), customer=customer.id).id
    stripe_sub = _subscribe(customer, [{"price": monthly.id}], default_payment_method=method)
    assert stripe_sub.status == "incomplete"
    intent = stripe.PaymentIntent.retrieve(invoice_payment_intent_id(stripe_sub.latest_invoice.id))
    assert intent.status == "requires_action"


def test_default_incomplete_leaves_the_first_payment_for_the_customer_to_confirm(
    monthly, stripe_fake
):
    """Stripe: "create Subscriptions with status=incomplete when the first invoice requires
    payment ... transition to status=active when successfully confirming the payment intent
    on the first invoice"."""
    customer = stripe.Customer.create(email="default-incomplete@example.com")
    method = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe_sub = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": monthly.id}],
        default_payment_method=method.id,
        payment_behavior="default_incomplete",
        expand=["latest_invoice.confirmation_secret"],
        idempotency_key=_key("sub"),
    )
    assert stripe_sub.status == "incomplete"
    assert stripe_sub.latest_invoice.status == "open"
    secret = stripe_sub.latest_invoice.confirmation_secret.client_secret
    intent_id = invoice_payment_intent_id(stripe_sub.latest_invoice.id)
    assert secret.startswith(intent_id + "_secret_")
    assert stripe.PaymentIntent.retrieve(intent_id).status != "succeeded"  # not attempted

    stripe.PaymentIntent.confirm(intent_id, payment_method=method.id)

    assert stripe.Invoice.retrieve(stripe_sub.latest_invoice.id).status == "paid"
    assert stripe.Subscription.retrieve(stripe_sub.id).status == "active"


def test_subscription_update_and_cancel_sync(product, monthly, customer_with_card, stripe_fake):
    customer, _ = customer_with_card
    yearly = stripe.Price.create(
        product=product.id, currency="usd", unit_amount=900, recurring={"interval": "month"}
    )
    stripe_sub = _subscribe(customer, [{"price": monthly.id, "quantity": 1}])
    first_item = stripe_sub["items"].data[0].id

    updated = stripe.Subscription.modify(
        stripe_sub.id,
        items=[{"id": first_item, "quantity": 4}, {"price": yearly.id, "quantity": 2}],
        cancel_at_period_end=True,
        idempotency_key=_key("sub-update"),
    )
    sub = djm.Subscription.sync_from_stripe_data(updated, api_key=stripe_fake.api_key)
    assert sub.cancel_at_period_end is True
    assert sub.stripe_data["cancel_at"] == updated["items"].data[0].current_period_end
    assert {i.price.id: i.quantity for i in sub.items.all()} == {monthly.id: 4, yearly.id: 2}

    removed = stripe.Subscription.modify(
        stripe_sub.id, items=[{"id": first_item, "deleted": True}], cancel_at_period_end=False
    )
    assert [i.price.id for i in removed["items"].data] == [yearly.id]
    assert removed.cancel_at is None

    canceled = stripe.Subscription.cancel(stripe_sub.id, idempotency_key=_key("sub-cancel"))
    sub = djm.Subscription.sync_from_stripe_data(canceled, api_key=stripe_fake.api_key)
    assert sub.status == "canceled"
    assert sub.stripe_data["canceled_at"] is not None
    assert sub.stripe_data["ended_at"] is not None


@pytest.mark.parametrize("partial", [True, False])
def test_refund_syncs_and_updates_the_charge(monthly, customer_with_card, stripe_fake, partial):
    customer, _ = customer_with_card
    sub = _subscribe(customer, [{"price": monthly.id, "quantity": 2}])
    charge_id = invoice_charge_id(sub.latest_invoice.id)
    amount = 1000 if partial else None

    stripe_refund = stripe.Refund.create(
        charge=charge_id, amount=amount, reason="requested_by_customer", idempotency_key=_key("re")
    )
    refund = djm.Refund.sync_from_stripe_data(stripe_refund, api_key=stripe_fake.api_key)
    charge = djm.Charge.sync_from_stripe_data(
        stripe.Charge.retrieve(charge_id), api_key=stripe_fake.api_key
    )
    assert refund.charge == charge
    assert refund.amount == (1000 if partial else 3000)
    assert refund.stripe_data["reason"] == "requested_by_customer"
    assert refund.stripe_data["payment_intent"] == charge.stripe_data["payment_intent"]
    assert charge.stripe_data["amount_refunded"] == (1000 if partial else 3000)
    assert charge.stripe_data["refunded"] is (not partial)

    with pytest.raises(stripe.InvalidRequestError):
        stripe.Refund.create(charge=charge_id, amount=2001 if partial else 1)


def test_lookup_keys_are_unique_unless_transferred(product, monthly, stripe_fake):
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Price.create(
            product=product.id, currency="usd", unit_amount=100, lookup_key="pro_monthly"
        )
    moved = stripe.Price.create(
        product=product.id,
        currency="usd",
        unit_amount=100,
        lookup_key="pro_monthly",
        transfer_lookup_key=True,
    )
    found = stripe.Price.list(lookup_keys=["pro_monthly"])
    assert [p.id for p in found.data] == [moved.id]
    assert stripe.Price.retrieve(monthly.id).lookup_key is None


def test_paying_an_incomplete_subscription_activates_it_and_says_so(monthly, stripe_fake):
    customer = stripe.Customer.create(email="retry@example.com")
    bad = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=customer.id)
    stripe_sub = _subscribe(customer, [{"price": monthly.id}], default_payment_method=bad.id)
    good = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Subscription.modify(stripe_sub.id, default_payment_method=good.id)

    invoice = stripe.Invoice.pay(stripe_sub.latest_invoice.id)

    assert invoice.status == "paid"
    assert stripe.Subscription.retrieve(stripe_sub.id).status == "active"
    updates = stripe.Event.list(type="customer.subscription.updated").data
    assert any(
        e.data.object.status == "active" and e.data.previous_attributes["status"] == "incomplete"
        for e in updates
    )
