"""The fake's subscription update accepts `trial_end` and `discounts` (staff console actions)."""

from __future__ import annotations

import time

import pytest
import stripe
from django.utils import timezone
from djstripe import models as djm

from analytics.mrr import subscription_mrr

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(stripe_fake):
    product = stripe.Product.create(name="Pro")
    price = stripe.Price.create(
        product=product.id, currency="usd", unit_amount=2000, recurring={"interval": "month"}
    )
    customer = stripe.Customer.create(email="trial@example.com")
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    return stripe.Subscription.create(
        customer=customer.id, items=[{"price": price.id}], default_payment_method=pm.id
    )


def test_trial_end_puts_an_active_subscription_into_trial(subscription):
    assert subscription.status == "active"
    trial_end = int(time.time()) + 14 * 86400
    updated = stripe.Subscription.modify(
        subscription.id, trial_end=trial_end, proration_behavior="none"
    )
    assert updated.status == "trialing"
    assert updated.trial_end == trial_end
    mirrored = djm.Subscription.sync_from_stripe_data(updated)
    assert mirrored.status == "trialing"


def test_discount_from_a_coupon_is_recorded_and_counts_in_mrr(subscription):
    stripe.Coupon.create(id="HALF", percent_off=50, duration="forever")
    updated = stripe.Subscription.modify(
        subscription.id, discounts=[{"coupon": "HALF"}], expand=["discounts.source.coupon"]
    )
    assert updated.discounts[0]["source"]["coupon"]["id"] == "HALF"
    assert subscription_mrr(updated.to_dict(), at=timezone.now()) == ("usd", 1000)
    removed = stripe.Subscription.modify(subscription.id, discounts="")
    assert removed.discounts == []


def test_unknown_coupon_is_resource_missing_and_changes_nothing(subscription):
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe.Subscription.modify(subscription.id, discounts=[{"coupon": "NOPE"}])
    # Stripe answers 400 when a parameter names the missing object (404 is for the URL's).
    assert excinfo.value.http_status == 400
    assert (excinfo.value.code, excinfo.value.param) == ("resource_missing", "discounts[0][coupon]")
    assert stripe.Subscription.retrieve(subscription.id).discounts == []


@pytest.mark.parametrize(
    ("card", "status", "invoice_status"),
    [("pm_card_visa", "active", "paid"), ("pm_card_chargeCustomerFail", "past_due", "open")],
)
def test_ending_a_trial_now_invoices_and_a_decline_makes_it_past_due(
    stripe_fake, card, status, invoice_status
):
    product = stripe.Product.create(name="Trial")
    price = stripe.Price.create(
        product=product.id, currency="usd", unit_amount=3000, recurring={"interval": "month"}
    )
    customer = stripe.Customer.create(email="ending@example.com")
    pm = stripe.PaymentMethod.attach(card, customer=customer.id)
    sub = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": price.id}],
        default_payment_method=pm.id,
        trial_period_days=7,
    )
    assert sub.status == "trialing" and sub.latest_invoice is None

    ended = stripe.Subscription.modify(sub.id, trial_end="now")

    assert ended.status == status
    invoice = stripe.Invoice.retrieve(ended.latest_invoice)
    assert (invoice.status, invoice.amount_due) == (invoice_status, 3000)
