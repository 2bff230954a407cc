"""One entry for getting any licence: the flow follows the licence type's pricing.

- one-time: a PaymentIntent now (``content.purchases.license_purchase``);
- recurring: a Stripe Subscription to the type's Price (``content.recurring.license_subscribe``);
- per use: issued now, its uses billed at each period close (``content.royalties``).
"""

from __future__ import annotations

from typing import Any

from accounts.models import User
from content import purchases, recurring, royalties
from content.models import LicenseType


def license_acquire(
    *, buyer: User, item_id: int, license_type_id: int, payment_method: str
) -> purchases.Purchase:
    """Buy (or, per use, take out) a licence of ``license_type_id`` on item ``item_id``.
    Raises what the flow for its pricing raises; an unknown type is the one-time flow's 400."""
    pricing = (
        LicenseType.objects.filter(pk=license_type_id, item_id=item_id)
        .values_list("pricing", flat=True)
        .first()
        if isinstance(license_type_id, int)
        else None
    )
    args: dict[str, Any] = {
        "buyer": buyer,
        "item_id": item_id,
        "license_type_id": license_type_id,
        "payment_method": payment_method,
    }
    if pricing == LicenseType.Pricing.RECURRING:
        return recurring.license_subscribe(**args)
    if pricing == LicenseType.Pricing.PER_USE:
        return royalties.license_issue_per_use(**args)
    return purchases.license_purchase(**args)
