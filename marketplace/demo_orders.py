"""Demo marketplace orders: one order in every state, through the services and the local fake
Stripe, including a disputed one and a refund after release (from a Connect provider, so the
transfer is reversed from the connected account).

Runs after the providers demo (ORDER 60 > the marketplace's 40 and the providers' listings);
it makes its own two sellers (one on Stripe Connect, one paid by bank transfer) and a listing
each, so it does not depend on the other demo's names. Idempotent: each demo order is found by
its ``requirements`` tag (``[demo:<state>]``); a second run creates nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import stripe
from django.utils import timezone

from accounts.models import User
from ledger.models import Account, PayeeProfile
from marketplace import orders
from marketplace.models import Category, Listing, ListingPackage, Order, Provider
from revenue_site.demo import demo_connect_onboard
from revenue_site.stripe_setup import stripe_api_key

ORDER = 60

BUYER = ("orders-buyer@example.com", "Olivia Buyer")
SELLERS = [
    # email, name, on Stripe Connect
    ("studio-connect@example.com", "North Studio (Connect)", True),
    ("studio-bank@example.com", "South Studio (bank)", False),
]
CARD = "pm_card_visa"
S = Order.State
# state → the steps from a new order (``refund_after_release``: released, then refunded in part)
PATHS: dict[str, list[str]] = {
    S.REQUESTED: [],
    S.QUOTED: ["quote"],
    S.CANCELED: ["cancel"],
    S.PAID: ["quote", "pay"],
    S.IN_PROGRESS: ["pay", "start"],
    S.DELIVERED: ["pay", "start", "deliver"],
    S.REVISION_REQUESTED: ["pay", "start", "deliver", "request_revision"],
    S.ACCEPTED: ["pay", "start", "deliver", "accept_only"],
    S.RELEASED: ["pay", "start", "deliver", "accept"],
    S.DISPUTED: ["pay", "start", "deliver", "dispute"],
    S.REFUNDED: ["pay", "start", "refund"],
    "refund_after_release": ["pay", "start", "deliver", "accept", "partial_refund"],
}


def _user(email: str, name: str) -> User:
    user, created = User.objects.get_or_create(email=email, defaults={"name": name})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _provider(email: str, name: str, connect: bool) -> Provider:
    provider, _ = Provider.objects.get_or_create(
        user=_user(email, name), defaults={"display_name": name}
    )
    profile = PayeeProfile.objects.filter(
        payee_type=Account.PayeeType.PROVIDER, payee_id=provider.pk
    ).first()
    if profile is None:
        if connect:
            account = stripe.Account.create(
                type="express",
                country="US",
                email=email,
                api_key=stripe_api_key(),
                idempotency_key=f"demo-orders-acct-{provider.pk}",
            )
            # Stripe transfers only to an onboarded account: onboard it on the fake.
            onboarded = demo_connect_onboard(account.id)
            fields = {
                "method": PayeeProfile.Method.STRIPE_CONNECT,
                "stripe_account_id": account.id,
                "stripe_payouts_enabled": onboarded,
                "stripe_charges_enabled": onboarded,
                "stripe_details_submitted": onboarded,
            }
        else:
            fields = {
                "method": PayeeProfile.Method.BANK_CSV,
                "bank_account_name": name,
                "bank_iban": "DE89370400440532013000",
            }
        PayeeProfile.objects.create(
            payee_type=Account.PayeeType.PROVIDER, payee_id=provider.pk, **fields
        )
    return provider


def _package(provider: Provider, price: int) -> ListingPackage:
    category, _ = Category.objects.get_or_create(
        slug="design", defaults={"name": "Design", "commission_percent": Decimal("15.00")}
    )
    listing, _ = Listing.objects.get_or_create(
        provider=provider,
        title=f"Brand identity by {provider.display_name}",
        defaults={
            "category": category,
            "description": "A logo, a palette and a one-page brand guide.",
            "status": Listing.Status.PUBLISHED,
            "submitted_at": timezone.now(),
            "published_at": timezone.now(),
        },
    )
    package, _ = ListingPackage.objects.get_or_create(
        listing=listing,
        tier=ListingPackage.Tier.STANDARD,
        defaults={
            "name": "Standard",
            "price": price,
            "currency": "usd",
            "delivery_days": 5,
            "revisions": 2,
        },
    )
    return package


def _walk(order: Order, steps: list[str], staff: User) -> Order:
    buyer, seller = order.buyer, order.provider.user
    for name in steps:
        if name == "quote":
            order = orders.order_quote(order=order, user=seller, note="Includes a favicon")
        elif name == "pay":
            order = orders.order_pay(order=order, user=buyer, payment_method=CARD)
        elif name == "start":
            order = orders.order_start(order=order, user=seller)
        elif name == "deliver":
            order = orders.order_deliver(order=order, user=seller, note="Files attached")
        elif name == "request_revision":
            order = orders.order_request_revision(order=order, user=buyer, note="Bluer, please")
        elif name == "accept_only":
            # Accepted, released by the hourly task (the demo leaves one waiting).
            order = orders._accept(order, actor=orders.Actor.BUYER, user=buyer)
        elif name == "accept":
            order = orders.order_accept(order=order, user=buyer)
        elif name == "dispute":
            order = orders.order_dispute(order=order, user=buyer, note="Not what we agreed")
        elif name == "cancel":
            order = orders.order_cancel(order=order, user=buyer, note="Changed my mind")
        elif name == "refund":
            order = orders.order_refund(order=order, user=staff, note="Provider unavailable")
        elif name == "partial_refund":
            order = orders.order_refund(
                order=order, user=staff, amount=order.price // 4, note="A page was missing"
            )
    return order


def seed(*, out: Callable[[str], None]) -> None:
    buyer = _user(*BUYER)
    staff = User.objects.filter(is_staff=True).order_by("pk").first() or _user(
        "orders-staff@example.com", "Orders Staff"
    )
    packages = [_package(_provider(*seller), 24000 + 6000 * i) for i, seller in enumerate(SELLERS)]
    made = 0
    for index, (state, steps) in enumerate(PATHS.items()):
        tag = f"[demo:{state}]"
        if Order.objects.filter(buyer=buyer, requirements__startswith=tag).exists():
            continue
        # Orders whose money moves after release go to the Connect seller: its transfer is
        # reversed on the refund after release.
        package = (
            packages[0]
            if state in ("refund_after_release", S.RELEASED)
            else packages[index % len(packages)]
        )
        order = orders.order_create(
            buyer=buyer, package_id=package.pk, requirements=f"{tag} A logo for our bakery"
        )
        _walk(order, steps, staff)
        orders.order_message_create(order=order, user=buyer, body="Looking forward to it!")
        made += 1
    out(f"marketplace orders: {made} new demo orders (one per state)")
