"""Demo content: creators (each with a payout method), one item of each kind, licence types of
each kind, a dataset co-created by three creators at 33.33 / 33.33 / 33.34 %, licence sales
over the last year and a creator payout batch.

Runs after API billing (ORDER 40), against the local fake Stripe. Each sale is a real
PaymentIntent booked by the purchase service (``license_payment_succeeded``) on its sale day,
so the split is in the ledger on that day and earnings spread over months: licences that are
valid, expired (sold 400 days ago for a year), revoked (refunded in full through Stripe and
``license_charge_refunded``), suspended by staff, and one still in the payout hold. Usage is
recorded on them through the usage service. Then yesterday's creator payout batch pays what
is past the hold (bank CSV, Stripe Connect and PayPal).

Idempotent: creators are found by their user's email, items by (owner, title), licence types
by (item, kind), sales by (buyer, licence type); shares are replaced with the same set; the
payout batch is the day's (the engine resumes it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import stripe
from django.utils import timezone

from accounts.models import User
from content import licensing, payouts, purchases, royalties, sale_reversals, services
from content.models import ContentItem, Creator, License, LicenseType
from ledger.models import Account, Payout
from ledger.payees import payee_connect_account_refresh
from ledger.payouts import payout_batch_run
from revenue_site.demo import demo_connect_onboard
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)

ORDER = 50

# email, display name, platform fee (%), or None for the default
CREATORS = [
    ("maya@creators.demo.example", "Maya Okafor", None),
    ("kai@creators.demo.example", "Kai Studio", Decimal("15.00")),
    ("rina@creators.demo.example", "Rina Sound", None),
]

_PERSONAL: dict[str, Any] = {"kind": "personal", "amount": 1500, "currency": "usd"}
_COMMERCIAL: dict[str, Any] = {
    "kind": "commercial",
    "pricing": "recurring",
    "amount": 4900,
    "currency": "usd",
    "limits": {"seats": 5, "downloads": 50},
}
_EDITORIAL: dict[str, Any] = {
    "kind": "editorial",
    "amount": 3000,
    "currency": "eur",
    "term_days": 365,
    "limits": {"views": 100_000},
}
_EXCLUSIVE: dict[str, Any] = {
    "kind": "exclusive",
    "amount": 250_000,
    "currency": "usd",
    "term_days": 730,
}
_ROYALTY: dict[str, Any] = {
    "kind": "usage_royalty",
    "pricing": "per_use",
    "currency": "usd",
    "per_use_unit_amount": Decimal("0.05"),
    "limits": {"api_calls": 100_000},
    "overage": "allow_150",
}

# owner email, title, kind, description, licence types
ITEMS: list[tuple[str, str, str, str, list[dict[str, Any]]]] = [
    (
        "maya@creators.demo.example",
        "Pricing field notes",
        ContentItem.Kind.ARTICLE,
        "What 40 SaaS founders learned changing their prices.",
        [
            _PERSONAL,
            _EDITORIAL,
            # A one-time commercial licence (the recurring one is on the image series).
            {"kind": "commercial", "amount": 9900, "currency": "usd", "limits": {"seats": 10}},
        ],
    ),
    (
        "maya@creators.demo.example",
        "Invoice toolkit",
        ContentItem.Kind.SOFTWARE,
        "A command-line tool that turns CSV exports into invoices.",
        [
            {**_PERSONAL, "amount": 2900, "limits": {"seats": 1}},
            _COMMERCIAL,
            {**_ROYALTY, "per_use_unit_amount": Decimal("0.1")},
        ],
    ),
    (
        "kai@creators.demo.example",
        "Harbour at dawn",
        ContentItem.Kind.VIDEO,
        "4K drone footage, 3 minutes.",
        [_EDITORIAL, _EXCLUSIVE],
    ),
    (
        "kai@creators.demo.example",
        "Lisbon rooftops",
        ContentItem.Kind.IMAGE,
        "A series of 12 photographs.",
        [{**_PERSONAL, "amount": 800, "limits": {"downloads": 12}}, _COMMERCIAL],
    ),
    (
        "rina@creators.demo.example",
        "Night drive",
        ContentItem.Kind.AUDIO,
        "A synthwave track, stems included.",
        [_PERSONAL, {**_EXCLUSIVE, "amount": 120_000, "currency": "jpy"}],
    ),
    (
        "maya@creators.demo.example",
        "Global weather 2026",
        ContentItem.Kind.DATASET,
        "Hourly observations from 9,000 stations, co-created by three creators.",
        [_COMMERCIAL, _ROYALTY, {**_PERSONAL, "amount": 999}],
    ),
]
CO_CREATED = "Global weather 2026"


def _creator(email: str, name: str, fee: Decimal | None) -> Creator:
    user, created = User.objects.get_or_create(email=email, defaults={"name": name})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    creator = Creator.objects.filter(user=user).first()
    if creator is None:
        creator = services.creator_create(user=user, display_name=name, platform_fee_percent=fee)
    return creator


# How each creator is paid (the payout engine's three methods).
PAYOUT_METHODS: dict[str, dict[str, str]] = {
    "maya@creators.demo.example": {
        "method": "bank_csv",
        "bank_account_name": "Maya Okafor",
        "bank_iban": "DE89370400440532013000",
        "bank_bic": "COBADEFFXXX",
    },
    "kai@creators.demo.example": {"method": "stripe_connect"},  # the account is made below
    "rina@creators.demo.example": {"method": "paypal", "paypal_email": "rina@paypal.demo.example"},
}

BUYERS = [
    ("reader@buyers.demo.example", "Reader Demo"),
    ("studio@buyers.demo.example", "Studio Demo"),
    ("agency@buyers.demo.example", "Agency Demo"),
]

# buyer, item, licence kind, days ago, what happens to it after the sale, usage (event, units)
SALES: list[tuple[str, str, str, int, str, list[tuple[str, int]]]] = [
    ("reader@buyers.demo.example", "Pricing field notes", "personal", 75, "", [("view", 12)]),
    ("agency@buyers.demo.example", "Pricing field notes", "editorial", 400, "", [("view", 900)]),
    ("studio@buyers.demo.example", "Harbour at dawn", "exclusive", 50, "", [("download", 2)]),
    ("reader@buyers.demo.example", "Night drive", "personal", 40, "refund", [("download", 1)]),
    ("agency@buyers.demo.example", "Lisbon rooftops", "personal", 30, "", [("download", 12)]),
    ("studio@buyers.demo.example", "Pricing field notes", "commercial", 20, "suspend", []),
    ("agency@buyers.demo.example", "Night drive", "exclusive", 25, "", [("download", 3)]),
    ("studio@buyers.demo.example", "Global weather 2026", "personal", 28, "", [("download", 4)]),
    ("reader@buyers.demo.example", "Invoice toolkit", "personal", 5, "", [("download", 1)]),
]


def _buyer(email: str, name: str) -> User:
    user, created = User.objects.get_or_create(email=email, defaults={"name": name})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _sell(*, buyer: User, license_type: LicenseType, at: datetime) -> tuple[License, str]:
    """A licence paid at ``at``: a pending licence, its PaymentIntent at (the fake) Stripe,
    then the purchase service books it as ``payment_intent.succeeded`` would, on that day."""
    new_key = services.license_key_generate()
    license = License.objects.create(
        license_type=license_type,
        content=license_type.item,
        holder=buyer,
        key_prefix=new_key.prefix,
        key_hash=new_key.key_hash,
        status=License.Status.PENDING,
        exclusive=license_type.kind == LicenseType.Kind.EXCLUSIVE,
        amount=license_type.amount,
        currency=license_type.currency,
    )
    intent = stripe.PaymentIntent.create(
        amount=license.amount,
        currency=license.currency,
        payment_method="pm_card_visa",
        payment_method_types=["card"],
        confirm=True,
        metadata={purchases.METADATA_KEY: str(license.pk)},
        api_key=stripe_api_key(),
        idempotency_key=f"demo:content-license-pi-{license.pk}",
    )
    License.objects.filter(pk=license.pk).update(stripe_payment_intent_id=intent.id)
    purchases.license_payment_succeeded(payment_intent=intent.to_dict(), occurred_at=at)
    license.refresh_from_db()
    return license, new_key.key


def _refund(license: License, at: datetime) -> None:
    """A full refund at Stripe, booked as its ``charge.refunded`` webhook would."""
    stripe.Refund.create(
        payment_intent=license.stripe_payment_intent_id,
        api_key=stripe_api_key(),
        idempotency_key=f"demo:content-refund-{license.pk}",
    )
    intent = stripe.PaymentIntent.retrieve(
        license.stripe_payment_intent_id, api_key=stripe_api_key()
    )
    charge = stripe.Charge.retrieve(str(intent.latest_charge), api_key=stripe_api_key())
    sale_reversals.license_charge_refunded(charge=charge.to_dict(), occurred_at=at)


def _sales(items: dict[str, ContentItem]) -> int:
    now = timezone.now()
    buyers = {email: _buyer(email, name) for email, name in BUYERS}
    made = 0
    for email, title, kind, days_ago, then, usage in SALES:
        license_type = LicenseType.objects.get(item=items[title], kind=kind, pricing="one_time")
        buyer = buyers[email]
        if License.objects.filter(holder=buyer, license_type=license_type).exists():
            continue
        sold_at = now - timedelta(days=days_ago)
        license, key = _sell(buyer=buyer, license_type=license_type, at=sold_at)
        made += 1
        for number, (event, units) in enumerate(usage):
            licensing.license_usage_record(
                key=key,
                event=event,
                quantity=units,
                event_id=f"demo-{number}",
                at=min(now, sold_at + timedelta(days=1)),
            )
        if then == "refund":
            _refund(license, sold_at + timedelta(days=5))
        elif then == "suspend":
            licensing.license_suspend(license=license)
    licensing.licenses_expire_due()
    return made


# A per-use (usage royalty) licence: issued at once with the card kept on file, its API calls
# rated and billed on the buyer's monthly usage invoice by the period close.
PER_USE = ("studio@buyers.demo.example", "Invoice toolkit", 1840)


def _per_use(items: dict[str, ContentItem]) -> int:
    email, title, calls = PER_USE
    license_type = LicenseType.objects.get(
        item=items[title], kind=LicenseType.Kind.USAGE_ROYALTY, pricing="per_use"
    )
    buyer = User.objects.get(email=email)
    if License.objects.filter(holder=buyer, license_type=license_type).exists():
        return 0
    purchase = royalties.license_issue_per_use(
        buyer=buyer,
        item_id=license_type.item_id,
        license_type_id=license_type.pk,
        payment_method="pm_card_visa",
    )
    licensing.license_usage_record(
        key=purchase.key, event="api_call", quantity=calls, event_id="demo-calls"
    )
    return 1


def _payout_methods(creators: dict[str, Creator]) -> None:
    for email, details in PAYOUT_METHODS.items():
        creator = creators[email]
        profile = payouts.creator_payee_profile(creator=creator)
        if profile is not None and profile.method:
            continue
        if details["method"] == "stripe_connect":
            account = stripe.Account.create(
                type="express",
                country="US",
                email=email,
                api_key=stripe_api_key(),
                idempotency_key=f"demo:creator-account-{creator.pk}",
            )
            details = {**details, "stripe_account_id": account.id}
        profile = payouts.creator_payout_settings_update(creator=creator, **details)
        if details["method"] == "stripe_connect" and demo_connect_onboard(
            profile.stripe_account_id
        ):
            # Stripe transfers only to an onboarded account; the payout engine checks.
            payee_connect_account_refresh(profile=profile)


def seed(*, out: Callable[[str], None]) -> None:
    creators = {email: _creator(email, name, fee) for email, name, fee in CREATORS}
    items: dict[str, ContentItem] = {}
    new_items = new_types = 0
    for email, title, kind, description, license_types in ITEMS:
        owner = creators[email]
        item = ContentItem.objects.filter(owner=owner, title=title).first()
        if item is None:
            item = services.content_item_create(
                owner=owner, title=title, kind=kind, description=description
            )
            new_items += 1
        if item.status != ContentItem.Status.PUBLISHED:
            item = services.content_item_update(item=item, status=ContentItem.Status.PUBLISHED)
        items[title] = item
        existing = set(LicenseType.objects.filter(item=item).values_list("kind", flat=True))
        for values in license_types:
            if values["kind"] not in existing:
                services.license_type_create(item=item, **values)
                new_types += 1
        if title == CO_CREATED:
            maya, kai, rina = (creators[email] for email, _, _ in CREATORS)
            services.content_shares_set(
                item=item,
                shares=[
                    (maya, Decimal("33.33")),
                    (kai, Decimal("33.33")),
                    (rina, Decimal("33.34")),
                ],
            )
    _payout_methods(creators)
    sold = _sales(items)
    per_use = _per_use(items)
    yesterday = (timezone.now() - timedelta(days=1)).date()
    batch = payout_batch_run(payee_type=Account.PayeeType.CREATOR, as_of=yesterday)
    paid = Payout.objects.filter(batch=batch, status=Payout.Status.PAID).count()
    out(
        f"  content: {len(creators)} creators, {new_items} new items, {new_types} new licence "
        f"types; '{CO_CREATED}' split 33.33 / 33.33 / 33.34 %; {sold} new licence sales, "
        f"{per_use} new per-use licence; "
        f"creator payouts as of {yesterday}: {paid} paid ({batch.get_status_display()})"
    )
