# ruff: noqa: F811  (pytest fixtures imported from api_helpers are parameters here)
"""Billing services: one Stripe Customer per user under concurrency, staff operations."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import stripe
from django.db import connection, connections
from django.utils import timezone
from djstripe import models as djm

from subscriptions.models import BillingCustomer
from subscriptions.services import billing
from tests.accounts.factories import UserFactory
from tests.subscriptions.api_helpers import catalog  # noqa: F401 (fixture)


@pytest.mark.django_db(transaction=True)
def test_two_racing_subscribes_create_one_stripe_customer(catalog):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (SQLite serialises writers instead)")
    user = UserFactory(email="racer@example.com")
    barrier = threading.Barrier(2)
    results, errors = [], []

    def subscribe():
        try:
            barrier.wait(timeout=10)
            results.append(
                billing.subscription_create(
                    user=user,
                    price_id=catalog["basic"].stripe_price_id,
                    payment_method_id="pm_card_visa",
                ).id
            )
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=subscribe) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(set(results)) == 2
    assert len(stripe.Customer.list(email="racer@example.com").data) == 1
    assert BillingCustomer.objects.filter(user=user).count() == 1
    customer = djm.Customer.objects.get(subscriber=user)
    assert set(
        djm.Subscription.objects.filter(customer=customer).values_list("id", flat=True)
    ) == set(results)


def test_extend_trial_apply_coupon_and_resync(catalog):
    user = UserFactory()
    sub = billing.subscription_create(
        user=user, price_id=catalog["basic"].stripe_price_id, payment_method_id="pm_card_visa"
    )
    trial_end = (timezone.now() + timedelta(days=10)).replace(microsecond=0)

    extended = billing.subscription_extend_trial(subscription_id=sub.id, trial_end=trial_end)
    assert extended.status == "trialing"
    assert extended.stripe_data["trial_end"] == int(trial_end.timestamp())

    stripe.Coupon.create(id="TENOFF", amount_off=100, currency="usd", duration="forever")
    discounted = billing.subscription_apply_coupon(subscription_id=sub.id, coupon_id="TENOFF")
    assert discounted.stripe_data["discounts"][0]["source"]["coupon"]["id"] == "TENOFF"
    with pytest.raises(billing.BillingInputError) as excinfo:
        billing.subscription_apply_coupon(subscription_id=sub.id, coupon_id="NOPE")
    assert excinfo.value.field == "coupon"

    # Stripe changed behind our back: resync brings the mirror up to date.
    stripe.Subscription.modify(sub.id, metadata={"note": "changed in the dashboard"})
    resynced = billing.subscription_resync(subscription_id=sub.id)
    assert resynced.metadata["note"] == "changed in the dashboard"
    assert djm.Subscription.objects.get(id=sub.id).metadata["note"] == "changed in the dashboard"


def test_extend_trial_refuses_past_and_naive_datetimes(catalog):
    with pytest.raises(billing.BillingInputError):
        billing.subscription_extend_trial(
            subscription_id="sub_x", trial_end=timezone.now() - timedelta(days=1)
        )
    with pytest.raises(billing.BillingInputError):
        billing.subscription_extend_trial(
            subscription_id="sub_x",
            trial_end=(timezone.now() + timedelta(days=1)).replace(tzinfo=None),
        )


def test_allow_incomplete_leaves_an_incomplete_subscription_with_an_open_invoice(catalog):
    user = UserFactory()
    sub = billing.subscription_create(
        user=user,
        price_id=catalog["basic"].stripe_price_id,
        payment_method_id="pm_card_chargeCustomerFail",
        allow_incomplete=True,
    )
    assert sub.status == "incomplete"
    invoice = djm.Invoice.objects.get(
        stripe_data__parent__subscription_details__subscription=sub.id
    )
    assert invoice.stripe_data["status"] == "open"


def test_ending_a_trial_with_a_failing_card_makes_the_subscription_past_due(catalog):
    sub = billing.subscription_create(
        user=UserFactory(),
        price_id=catalog["basic"].stripe_price_id,
        payment_method_id="pm_card_chargeCustomerFail",
        trial_days=7,
    )
    assert sub.status == "trialing"

    ended = billing.subscription_end_trial(subscription_id=sub.id)

    assert ended.status == "past_due"
    invoice = djm.Invoice.objects.get(
        stripe_data__parent__subscription_details__subscription=ended.id
    )
    assert (invoice.stripe_data["status"], invoice.stripe_data["amount_due"]) == ("open", 1000)
    with pytest.raises(billing.SubscriptionStateError):
        billing.subscription_end_trial(subscription_id=sub.id)
