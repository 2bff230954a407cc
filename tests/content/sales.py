"""Booking licence sales and refunds through the purchase services, as the Stripe webhooks
do (``payment_intent.succeeded``, ``charge.refunded``), without a round trip to Stripe."""

from __future__ import annotations

import itertools
from datetime import datetime

from content import purchases, sale_reversals
from content.models import License
from tests.content.factories import LicenseFactory

_ids = itertools.count(1)


def sell(license_type, *, at: datetime, holder=None, amount: int | None = None) -> License:
    """A pending licence of ``license_type`` paid at ``at``: active, the split booked."""
    extra: dict = {"holder": holder} if holder is not None else {}
    if amount is not None:
        extra["amount"] = amount
    license = LicenseFactory(license_type=license_type, status=License.Status.PENDING, **extra)
    pi = f"pi_test{next(_ids)}x{license.pk}"
    purchases.license_payment_succeeded(
        payment_intent={
            "id": pi,
            "object": "payment_intent",
            "amount": license.amount,
            "amount_received": license.amount,
            "currency": license.currency,
            "status": "succeeded",
            "metadata": {purchases.METADATA_KEY: str(license.pk)},
        },
        occurred_at=at,
    )
    license.refresh_from_db()
    return license


def refund(license: License, *, at: datetime, amount: int | None = None) -> None:
    """Refund ``amount`` (default: all) of the licence's payment, as charge.refunded does."""
    refunded = license.amount if amount is None else amount
    sale_reversals.license_charge_refunded(
        charge={
            "id": f"ch_{license.stripe_payment_intent_id}",
            "object": "charge",
            "payment_intent": license.stripe_payment_intent_id,
            "amount": license.amount,
            "amount_refunded": refunded,
            "refunded": refunded >= license.amount,
        },
        occurred_at=at,
    )
