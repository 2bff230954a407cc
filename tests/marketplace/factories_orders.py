"""factory_boy factories for marketplace orders: a published listing with one package of a
provider paid by bank transfer (CSV payouts) or, with ``connect=True``, on Stripe Connect;
orders in any state (``OrderFactory`` builds rows, ``order_in`` walks the services)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import factory
from django.utils import timezone

from accounts.models import User
from ledger.models import Account, PayeeProfile
from marketplace import orders
from marketplace.models import Category, Listing, ListingPackage, Order, Provider
from tests.accounts.factories import UserFactory
from tests.stripe_harness import connected_account


class OrderCategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Order category {n}")
    slug = factory.Sequence(lambda n: f"order-category-{n}")
    commission_percent = Decimal("15.00")


class OrderProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory, password=None)
    display_name = factory.Sequence(lambda n: f"Seller {n}")

    @factory.post_generation
    def connect(self, create: bool, extracted: bool | None, **kwargs: Any) -> None:
        """``connect=True``: a Stripe Connect Express account on the fake (needs stripe_fake);
        else bank details (CSV payouts)."""
        if not create:
            return
        if extracted:
            account = connected_account()
            defaults = {
                "method": PayeeProfile.Method.STRIPE_CONNECT,
                "stripe_account_id": account.id,
                "stripe_payouts_enabled": True,
                "stripe_charges_enabled": True,
            }
        else:
            defaults = {
                "method": PayeeProfile.Method.BANK_CSV,
                "bank_account_name": self.display_name,
                "bank_iban": "DE89370400440532013000",
            }
        PayeeProfile.objects.update_or_create(
            payee_type=Account.PayeeType.PROVIDER, payee_id=self.pk, defaults=defaults
        )


class OrderListingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Listing

    provider = factory.SubFactory(OrderProviderFactory)
    category = factory.SubFactory(OrderCategoryFactory)
    title = factory.Sequence(lambda n: f"Logo design {n}")
    status = Listing.Status.PUBLISHED
    published_at = factory.LazyFunction(timezone.now)
    submitted_at = factory.LazyFunction(timezone.now)


class OrderPackageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ListingPackage

    listing = factory.SubFactory(OrderListingFactory)
    tier = ListingPackage.Tier.BASIC
    name = "Basic"
    price = 10000
    currency = "usd"
    delivery_days = 3
    revisions = 1


class OrderFactory(factory.django.DjangoModelFactory):
    """An order row in ``state`` (no money moved: for isolation, listing and admin tests)."""

    class Meta:
        model = Order

    buyer = factory.SubFactory(UserFactory, password=None)
    package = factory.SubFactory(OrderPackageFactory)
    listing = factory.SelfAttribute("package.listing")
    provider = factory.SelfAttribute("package.listing.provider")
    price = factory.SelfAttribute("package.price")
    currency = factory.SelfAttribute("package.currency")
    commission_percent = Decimal("15.00")
    revisions_allowed = factory.SelfAttribute("package.revisions")


# The path through the services to each state (the buyer pays with a test card on the fake).
PATHS: dict[str, list[str]] = {
    Order.State.REQUESTED: [],
    Order.State.QUOTED: ["quote"],
    Order.State.CANCELED: ["cancel"],
    Order.State.PAID: ["quote", "pay"],
    Order.State.IN_PROGRESS: ["quote", "pay", "start"],
    Order.State.DELIVERED: ["quote", "pay", "start", "deliver"],
    Order.State.REVISION_REQUESTED: ["quote", "pay", "start", "deliver", "request_revision"],
    Order.State.DISPUTED: ["quote", "pay", "start", "deliver", "dispute"],
    Order.State.ACCEPTED: ["quote", "pay", "start", "deliver", "accept_only"],
    Order.State.RELEASED: ["quote", "pay", "start", "deliver", "accept"],
    Order.State.REFUNDED: ["quote", "pay", "refund"],
}


def step(order: Order, name: str, *, staff: User | None = None, **kwargs: Any) -> Order:
    buyer, seller = order.buyer, order.provider.user
    if name == "quote":
        return orders.order_quote(order=order, user=seller, **kwargs)
    if name == "pay":
        return orders.order_pay(order=order, user=buyer, payment_method="pm_card_visa")
    if name == "start":
        return orders.order_start(order=order, user=seller)
    if name == "deliver":
        return orders.order_deliver(order=order, user=seller)
    if name == "request_revision":
        return orders.order_request_revision(order=order, user=buyer)
    if name == "dispute":
        return orders.order_dispute(order=order, user=buyer, note="Not what I asked for")
    if name == "cancel":
        return orders.order_cancel(order=order, user=buyer)
    if name == "accept":
        return orders.order_accept(order=order, user=buyer)
    if name == "accept_only":
        return orders._accept(order, actor=orders.Actor.BUYER, user=buyer)
    if name == "refund":
        return orders.order_refund(order=order, user=staff or UserFactory(is_staff=True))
    raise ValueError(name)


def order_in(state: str, *, package: ListingPackage | None = None, **kwargs: Any) -> Order:
    """A real order walked to ``state`` through the services (needs stripe_fake past quoted)."""
    package = package or OrderPackageFactory(**kwargs)
    order = orders.order_create(buyer=UserFactory(password=None), package_id=package.pk)
    for name in PATHS[state]:
        order = step(order, name)
    order.refresh_from_db()
    assert order.state == state, (order.state, state)
    return order
