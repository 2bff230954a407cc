"""Demo content: creators, one item of each kind, licence types of each kind, and a dataset
co-created by three creators at 33.33 / 33.33 / 33.34 %.

Runs after API billing (ORDER 40). No licences or purchases yet: the purchase flow adds them.
Idempotent: creators are found by their user's email, items by (owner, title), licence types
by (item, kind); shares are replaced with the same set.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from accounts.models import User
from content import services
from content.models import ContentItem, Creator, LicenseType

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
        [_PERSONAL, _EDITORIAL],
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
        [_COMMERCIAL, _ROYALTY],
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


def seed(*, out: Callable[[str], None]) -> None:
    creators = {email: _creator(email, name, fee) for email, name, fee in CREATORS}
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
    out(
        f"  content: {len(creators)} creators, {new_items} new items, {new_types} new licence "
        f"types; '{CO_CREATED}' split 33.33 / 33.33 / 33.34 %"
    )
