"""One entry for getting any licence: the flow follows the licence type's pricing.

- one-time: a PaymentIntent now (``content.purchases.license_purchase``);
- recurring: a Stripe Subscription to the type's Price (``content.recurring.license_subscribe``);
- per use: issued now, its uses billed at each period close (``content.royalties``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.models import User
from content import purchases, recurring, royalties
from content.models import License, LicenseType
from revenue_site.stripe_errors import BillingError

logger = logging.getLogger(__name__)


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


def pending_payment_ttl() -> timedelta:
    return timedelta(minutes=settings.CONTENT_PENDING_PAYMENT_MINUTES)


def pending_licenses_release(*, now: datetime | None = None) -> int:
    """Settle the licences still PENDING ``CONTENT_PENDING_PAYMENT_MINUTES`` after they were
    bought: a buyer who never finished 3-D Secure would otherwise hold an exclusive item for
    ever (Stripe leaves a one-time PaymentIntent in ``requires_action`` indefinitely, and an
    incomplete subscription for 23 hours). What Stripe says of the payment now decides, per
    flow: ``purchases.pending_payment_settle`` (one-time) and
    ``recurring.pending_subscription_settle``. Stripe being unavailable leaves the rest for
    the next run (the beat task, every 10 minutes). Returns how many licences changed."""
    now = now or timezone.now()
    stale = list(
        License.objects.filter(
            status=License.Status.PENDING, created_at__lt=now - pending_payment_ttl()
        )
        .order_by("created_at", "pk")
        .values_list("pk", "stripe_payment_intent_id", "stripe_subscription_id")
    )
    settled = 0
    for pk, payment_intent_id, subscription_id in stale:
        try:
            if subscription_id:
                changed = recurring.pending_subscription_settle(
                    license_pk=pk, subscription_id=subscription_id, now=now
                )
            else:
                changed = purchases.pending_payment_settle(
                    license_pk=pk, payment_intent_id=payment_intent_id, now=now
                )
        except BillingError as exc:
            logger.warning("pending licence %s not settled now: %s", pk, exc)
            continue
        settled += changed
    return settled
