"""A realistic Stripe event stream for the webhook storm test (tests/faults/test_webhook_storm.py).

``storm_scenario_run`` drives the fake Stripe through the real ``stripe`` client, and our own
services where a stream starts on our side (licence purchases, marketplace orders), and returns
the fake's events in the order they happened (raw JSON, as Stripe sends them). Nothing of them is
delivered yet: the caller decides in which order, how often and from how many threads.

What happens (every customer of a subscription lives on a Stripe test clock, three customers per
clock as Stripe allows, so a subscription's life spans months of event time as in production):

- subscription customers, a third of them referred (``referral_code`` in the customer's Stripe
  metadata, attributed from ``customer.created``), subscribe to one of three prices (monthly,
  a higher monthly, yearly; quantity 1 to 3); one card is disputed by the bank at once;
- a day later some upgrade (quantity or price), some downgrade, some cancel at period end, some
  cancel at once;
- a month later the clocks renew the rest (``subscription_cycle`` invoices, with prorations) and
  end the subscriptions canceled at period end;
- some renewal charges are refunded (partially or in full);
- one-time content licences bought through our API with a 3-D Secure card: most authenticate
  (``payment_intent.succeeded`` activates the licence), some fail (the pending licence goes);
  one paid licence is refunded in part;
- marketplace orders: some paid through our API and then partly refunded on Stripe (booked
  from ``charge.refunded``), some paid while our answer from Stripe was lost (the order is
  paid from ``payment_intent.succeeded``), one disputed by the bank.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import stripe
from rest_framework.test import APIClient

from content.models import License
from marketplace import orders
from marketplace.models import Order
from tests.accounts.factories import UserFactory
from tests.affiliates.factories import AffiliateFactory, ProgramFactory, ReferralLinkFactory
from tests.content.factories import LicenseTypeFactory
from tests.marketplace.factories_orders import OrderPackageFactory
from tests.stripe_harness import StripeFake, three_d_secure_card
from tests.stripe_paths import invoice_charge_id

CUSTOMERS_PER_CLOCK = 3  # Stripe's limit per test clock
DAY = 24 * 3600


def key(purpose: str) -> str:
    return f"storm-{purpose}-{uuid.uuid4().hex}"


@dataclass
class Scenario:
    """What was made; ``events`` is filled by :func:`storm_events`."""

    subscriptions: list[str] = field(default_factory=list)
    licenses: list[int] = field(default_factory=list)
    orders: list[int] = field(default_factory=list)
    referred_customers: list[str] = field(default_factory=list)


def storm_events(*, after: str | None = None) -> list[dict[str, Any]]:
    """Every event on the fake (after the id ``after``), in the order they happened, raw."""
    found: list[dict[str, Any]] = []
    starting_after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if starting_after:
            params["starting_after"] = starting_after
        page = stripe.Event.list(**params).last_response.data
        found.extend(page["data"])
        if not page.get("has_more") or not page["data"]:
            break
        starting_after = page["data"][-1]["id"]
    # The fake lists events oldest first (its store's order: the order they happened).
    if after is not None:
        ids = [e["id"] for e in found]
        found = found[ids.index(after) + 1 :] if after in ids else found
    return found


def _price(product: Any, *, unit_amount: int, interval: str) -> Any:
    return stripe.Price.create(
        product=product.id,
        currency="usd",
        unit_amount=unit_amount,
        recurring={"interval": interval},
        idempotency_key=key("price"),
    )


def _advance(clocks: list[Any], seconds: int) -> None:
    for clock in clocks:
        current = stripe.test_helpers.TestClock.retrieve(clock.id).frozen_time
        stripe.test_helpers.TestClock.advance(clock.id, frozen_time=current + seconds)


def _subscriptions(scenario: Scenario, *, customers: int, start: int) -> None:
    program = ProgramFactory(commission_rate="20", hold_days=30)
    links = [ReferralLinkFactory(affiliate=AffiliateFactory(program=program)) for _ in range(3)]
    product = stripe.Product.create(name="Storm plan", idempotency_key=key("prod"))
    prices = [
        _price(product, unit_amount=2000, interval="month"),
        _price(product, unit_amount=5000, interval="month"),
        _price(product, unit_amount=24000, interval="year"),
    ]
    clocks = [
        stripe.test_helpers.TestClock.create(frozen_time=start, name=f"storm {n}")
        for n in range((customers + CUSTOMERS_PER_CLOCK - 1) // CUSTOMERS_PER_CLOCK)
    ]
    subs = []
    for n in range(customers):
        metadata = {"referral_code": links[n % 3].code} if n % 3 == 0 else {}
        customer = stripe.Customer.create(
            email=f"storm{n}@customer.test",
            test_clock=clocks[n // CUSTOMERS_PER_CLOCK].id,
            metadata=metadata,
            idempotency_key=key("cus"),
        )
        if metadata:
            scenario.referred_customers.append(customer.id)
        card = "pm_card_createDispute" if n == 4 else "pm_card_visa"
        pm = stripe.PaymentMethod.attach(card, customer=customer.id)
        stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
        sub = stripe.Subscription.create(
            customer=customer.id,
            items=[{"price": prices[n % 3].id, "quantity": 1 + n % 3}],
            default_payment_method=pm.id,
            idempotency_key=key("sub"),
        )
        subs.append(sub)
        scenario.subscriptions.append(sub.id)

    _advance(clocks, DAY)
    for n, sub in enumerate(subs):
        item = stripe.Subscription.retrieve(sub.id)["items"]["data"][0]
        change = n % 5
        if change == 0:  # upgrade: more seats
            stripe.Subscription.modify(
                sub.id,
                items=[{"id": item.id, "quantity": item.quantity + 2}],
                idempotency_key=key("up"),
            )
        elif change == 1 and item.price.id == prices[0].id:  # upgrade: the higher price
            stripe.Subscription.modify(
                sub.id, items=[{"id": item.id, "price": prices[1].id}], idempotency_key=key("px")
            )
        elif change == 2 and item.quantity > 1:  # downgrade
            stripe.Subscription.modify(
                sub.id, items=[{"id": item.id, "quantity": 1}], idempotency_key=key("down")
            )
        elif change == 3:
            stripe.Subscription.modify(
                sub.id, cancel_at_period_end=True, idempotency_key=key("cape")
            )
        elif change == 4 and n % 2:
            stripe.Subscription.cancel(sub.id)

    _advance(clocks, 31 * DAY)  # renewals and cancellations at period end
    refunded = 0
    for n, sub in enumerate(subs):
        if n % 4 != 1:
            continue
        latest = stripe.Subscription.retrieve(sub.id)
        if latest.status != "active" or not latest.latest_invoice:
            continue
        invoice = stripe.Invoice.retrieve(latest.latest_invoice)
        if invoice.status != "paid" or invoice.amount_paid <= 0:
            continue
        amount = invoice.amount_paid if refunded % 3 == 0 else invoice.amount_paid // 3
        stripe.Refund.create(
            charge=invoice_charge_id(invoice.id), amount=amount, idempotency_key=key("re")
        )
        refunded += 1


def _licenses(scenario: Scenario, fake: StripeFake, *, count: int) -> None:
    program = ProgramFactory(commission_rate="10", hold_days=30)
    link = ReferralLinkFactory(affiliate=AffiliateFactory(program=program))
    types = [LicenseTypeFactory(amount=1999 + 1000 * n) for n in range(3)]
    for n in range(count):
        buyer = UserFactory(password=None)
        client = APIClient()
        client.force_authenticate(buyer)
        license_type = types[n % 3]
        if n % 4 == 0:  # a referred buyer: the licence sale earns a commission
            from affiliates.services.attribution import referral_attribute
            from subscriptions.services.billing.customers import billing_customer_ensure

            _, customer = billing_customer_ensure(user=buyer)
            referral_attribute(
                stripe_customer_id=customer.id,
                user=buyer,
                referral_code=link.code,
                at=_now(),
            )
        response = client.post(
            f"/api/v1/content/{license_type.item_id}/licenses/",
            {"license_type": license_type.pk, "payment_method": three_d_secure_card()},
            "json",
        )
        assert response.status_code == 201, response.content
        license = License.objects.get(pk=response.json()["id"])
        assert license.status == License.Status.PENDING, license.status
        fake.authenticate(license.stripe_payment_intent_id, success=n % 5 != 3)
        scenario.licenses.append(license.pk)
    paid = [
        License.objects.get(pk=pk).stripe_payment_intent_id
        for n, pk in enumerate(scenario.licenses)
        if n % 5 != 3
    ]
    charge = stripe.PaymentIntent.retrieve(paid[0]).latest_charge
    stripe.Refund.create(charge=charge, amount=700, idempotency_key=key("lre"))


def _now() -> Any:
    from django.utils import timezone

    return timezone.now()


def _orders(scenario: Scenario, *, count: int) -> None:
    package = OrderPackageFactory(price=12000)
    for n in range(count):
        order = orders.order_create(buyer=UserFactory(password=None), package_id=package.pk)
        order = orders.order_quote(order=order, user=order.provider.user)
        if n % 3 == 0:  # paid through our API, then partly refunded on Stripe
            order = orders.order_pay(order=order, user=order.buyer, payment_method="pm_card_visa")
            order.refresh_from_db()
            stripe.Refund.create(
                charge=order.stripe_charge_id, amount=3000, idempotency_key=key("ore")
            )
        else:  # paid, but our answer from Stripe was lost: the event pays the order
            card = "pm_card_createDispute" if n == 1 else "pm_card_visa"
            intent = stripe.PaymentIntent.create(
                amount=order.price,
                currency=order.currency,
                payment_method=card,
                payment_method_types=["card"],
                confirm=True,
                metadata={orders.METADATA_KEY: str(order.pk)},
                idempotency_key=key("opi"),
            )
            Order.objects.filter(pk=order.pk).update(stripe_payment_intent_id=intent.id)
        scenario.orders.append(order.pk)


def storm_scenario_run(
    fake: StripeFake, *, customers: int, licenses: int, orders_count: int, start: int
) -> Scenario:
    """Make the whole scenario (see the module docstring); ``start`` is the clocks' time."""
    scenario = Scenario()
    _subscriptions(scenario, customers=customers, start=start)
    _licenses(scenario, fake, count=licenses)
    _orders(scenario, count=orders_count)
    return scenario


__all__ = ["Scenario", "storm_events", "storm_scenario_run", "timedelta"]
