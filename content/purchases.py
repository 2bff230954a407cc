"""Buying a licence with a one-time price, and what Stripe's payment events do to it.

- ``license_purchase``: a PENDING licence (its key generated now, returned once, only its hash
  kept), then a Stripe PaymentIntent confirmed with the buyer's payment method (idempotency
  key from the licence's pk, ``metadata.content_license`` = the pk). An exclusive licence type
  is checked under a row lock on the item before any charge: an ACTIVE or PENDING exclusive
  licence of the item answers 409. A declined or failed charge deletes the pending licence.
- ``license_payment_succeeded`` (``payment_intent.succeeded``, and the purchase itself when
  the charge succeeded synchronously): the licence becomes ACTIVE (``expires_at`` from the
  term) and the sale is split in the ledger (``license_sale_split``), once per PaymentIntent.
- ``license_charge_refunded`` / ``license_dispute_lost``: a full refund or a lost dispute
  revokes the licence; refunds and lost disputes reverse the sale posting through new ledger
  entries (pro rata over the platform fee and each co-creator), idempotent per refund total /
  dispute.

Accounting (minor units, the licence type's currency): Dr ``asset.stripe_clearing`` amount /
Cr ``revenue.content`` the platform fee / Cr each co-creator's payable their share. The
creators' total is ``amount * (100 - fee) %`` rounded down, then split by the shares with the
largest remainder method; the platform gets what is left, so the parts add up exactly.
Recurring licence types are sold as Stripe Subscriptions (``content.recurring``) and per-use
ones are issued to be billed at period close (``content.royalties``); ``content.acquire``
picks the flow from the type's pricing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import stripe
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from djstripe import models as djm

from accounts.models import User
from content.models import ContentItem, ContentShare, License, LicenseType
from content.services import PAYEE_TYPE, license_key_generate
from ledger.chart import SystemAccount
from ledger.models import Entry, Transaction
from ledger.services import Line, account_for_payee, ledger_post, ledger_reverse, system_account
from revenue_site.money import allocate, split_with_platform_remainder
from revenue_site.stripe_errors import BillingError, stripe_errors
from revenue_site.stripe_payloads import stripe_id
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)

SALE_SOURCE = "content.license_sale"
REFUND_SOURCE = "content.license_refund"
DISPUTE_SOURCE = "content.license_dispute"
METADATA_KEY = "content_license"
HUNDRED = Decimal(100)


class ExclusiveLicenseTakenError(BillingError):
    """Someone else holds (or is paying for) the item's exclusive licence."""

    code = "license_taken"
    http_status = 409


def sale_key(payment_intent_id: str) -> str:
    return f"stripe:content.payment_intent:{payment_intent_id}"


# --- the split -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SaleSplit:
    platform: int
    creators: list[tuple[int, int]]  # (creator id, minor units), in share order


def license_sale_split(
    *, amount: int, platform_fee_percent: Decimal, shares: list[tuple[int, Decimal]]
) -> SaleSplit:
    """Split ``amount`` between the platform (its fee, plus the rounding) and the creators
    (``shares``: creator id and percent, totalling 100). The parts add up to ``amount``."""
    rate = (HUNDRED - platform_fee_percent) / HUNDRED
    parts = split_with_platform_remainder(amount, {"creators": rate})
    creators_total = parts["creators"]
    if creators_total == 0:
        return SaleSplit(platform=amount, creators=[(cid, 0) for cid, _ in shares])
    amounts = allocate(creators_total, [percent for _, percent in shares])
    return SaleSplit(
        platform=parts["platform"],
        creators=[(cid, part) for (cid, _), part in zip(shares, amounts, strict=True)],
    )


def _item_shares(item: ContentItem) -> list[tuple[int, Decimal]]:
    rows = list(
        ContentShare.objects.filter(item=item).order_by("pk").values_list("creator_id", "percent")
    )
    return rows or [(item.owner_id, HUNDRED)]


# --- purchase ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Purchase:
    license: License
    key: str  # the full licence key: shown to the buyer this once, never stored


def _sellable_license_type(
    item: ContentItem, license_type_id: int, pricing: str = LicenseType.Pricing.ONE_TIME
) -> LicenseType:
    license_type = (
        LicenseType.objects.filter(pk=license_type_id, item=item, is_active=True).first()
        if isinstance(license_type_id, int)
        else None
    )
    if license_type is None:
        raise ValidationError({"license_type": ["Not a licence type on sale for this item."]})
    if license_type.pricing != pricing:
        raise ValidationError(
            {"license_type": [f"Not a licence type with a {pricing.replace('_', '-')} price."]}
        )
    return license_type


@transaction.atomic
def _pending_license_create(
    *,
    buyer: User,
    item_id: int,
    license_type_id: int,
    pricing: str = LicenseType.Pricing.ONE_TIME,
) -> Purchase:
    """A PENDING licence of ``pricing`` (recurring and per-use sales share it: see
    ``content.recurring`` and ``content.royalties``)."""
    # The item's row lock serialises purchases of one item, so two buyers of an exclusive
    # licence cannot both pass the check below.
    item = (
        ContentItem.objects.select_for_update()
        .filter(pk=item_id, status=ContentItem.Status.PUBLISHED)
        .first()
    )
    if item is None:
        raise ContentItem.DoesNotExist(f"no published item {item_id}")
    license_type = _sellable_license_type(item, license_type_id, pricing)
    exclusive = license_type.kind == LicenseType.Kind.EXCLUSIVE
    if (
        exclusive
        and License.objects.filter(
            content=item,
            exclusive=True,
            status__in=[License.Status.ACTIVE, License.Status.PENDING],
        ).exists()
    ):
        raise ExclusiveLicenseTakenError(
            "This item's exclusive licence is already held or being bought."
        )
    new_key = license_key_generate()
    license = License.objects.create(
        license_type=license_type,
        content=item,
        holder=buyer,
        key_prefix=new_key.prefix,
        key_hash=new_key.key_hash,
        status=License.Status.PENDING,
        exclusive=exclusive,
        amount=license_type.amount,
        currency=license_type.currency,
    )
    return Purchase(license=license, key=new_key.key)


def license_purchase(
    *, buyer: User, item_id: int, license_type_id: int, payment_method: str
) -> Purchase:
    """Buy a one-time licence of a published item with ``payment_method`` (a Stripe id).

    Raises ContentItem.DoesNotExist (no such published item), ValidationError naming
    ``license_type`` or ``payment_method``, ExclusiveLicenseTakenError (409) before any
    charge, and the ``stripe_errors`` kinds (PaymentDeclined 402, ...), after which the
    pending licence is gone. Returns the licence (ACTIVE when the charge succeeded at once,
    else PENDING until ``payment_intent.succeeded``) and its key.
    """
    if not isinstance(payment_method, str) or not payment_method.strip():
        raise ValidationError({"payment_method": ["A Stripe payment method id."]})
    purchase = _pending_license_create(
        buyer=buyer, item_id=item_id, license_type_id=license_type_id
    )
    license = purchase.license
    try:
        with stripe_errors(param_fields={"payment_method": "payment_method"}):
            intent = stripe.PaymentIntent.create(
                amount=license.amount,
                currency=license.currency,
                payment_method=payment_method.strip(),
                payment_method_types=["card"],
                confirm=True,
                metadata={METADATA_KEY: str(license.pk)},
                api_key=stripe_api_key(),
                idempotency_key=f"content-license-pi-{license.pk}",
            )
    except BillingError:
        # Nothing was charged (declined, refused or unreachable): free the item again. A
        # PaymentIntent that succeeded anyway is refunded when its event arrives.
        License.objects.filter(pk=license.pk, status=License.Status.PENDING).delete()
        raise
    data = intent.to_dict()
    License.objects.filter(pk=license.pk).update(stripe_payment_intent_id=intent.id)
    if data.get("status") == "succeeded":
        license_payment_succeeded(payment_intent=data, occurred_at=license.created_at)
    license.refresh_from_db()
    return Purchase(license=license, key=purchase.key)


# --- payment events ------------------------------------------------------------------------


def _license_pk(payment_intent: Mapping[str, Any]) -> int | None:
    metadata = payment_intent.get("metadata")
    value = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@stripe_errors()
def _refund_orphan(payment_intent_id: str, livemode: Any) -> None:
    stripe.Refund.create(
        payment_intent=payment_intent_id,
        api_key=stripe_api_key(livemode),
        idempotency_key=f"content-license-orphan-refund-{payment_intent_id}",
    )


@transaction.atomic
def license_payment_succeeded(
    *, payment_intent: Mapping[str, Any], occurred_at: datetime
) -> Transaction | None:
    """Activate the licence a PaymentIntent paid for and book the split (once per intent).

    Returns the sale posting, or None for intents that are not licence purchases. A payment
    for a licence that no longer exists (its purchase failed on our side) is refunded.
    """
    pk = _license_pk(payment_intent)
    if pk is None:
        return None
    pi_id = stripe_id(payment_intent.get("id"))
    license = (
        License.objects.select_for_update()
        .select_related("content__owner", "license_type")
        .filter(pk=pk)
        .first()
    )
    if license is None:
        logger.warning("payment %s for a missing licence %s: refunding it", pi_id, pk)
        _refund_orphan(pi_id, payment_intent.get("livemode"))
        return None
    booked = Transaction.objects.filter(source=SALE_SOURCE, idempotency_key=sale_key(pi_id))
    if booked.exists():
        return booked.get()
    if license.status != License.Status.PENDING:
        return None  # revoked (refunded) before its payment event was processed
    amount = int(payment_intent.get("amount_received") or payment_intent.get("amount") or 0)
    currency = str(payment_intent.get("currency") or license.currency).lower()
    license.status = License.Status.ACTIVE
    license.issued_at = occurred_at
    license.stripe_payment_intent_id = pi_id
    term = license.license_type.term_days
    license.expires_at = occurred_at + timedelta(days=term) if term else None
    license.save(update_fields=["status", "issued_at", "expires_at", "stripe_payment_intent_id"])
    split = license_sale_split(
        amount=amount,
        platform_fee_percent=license.content.effective_platform_fee_percent,
        shares=_item_shares(license.content),
    )
    lines = [Line.debit(system_account(SystemAccount.STRIPE_CLEARING), amount, currency)]
    if split.platform:
        lines.append(
            Line.credit(system_account(SystemAccount.REVENUE_CONTENT), split.platform, currency)
        )
    for creator_id, part in split.creators:
        if part:
            payable = account_for_payee(payee_type=PAYEE_TYPE, payee_id=creator_id)
            lines.append(Line.credit(payable, part, currency))
    return ledger_post(
        idempotency_key=sale_key(pi_id),
        source=SALE_SOURCE,
        lines=lines,
        memo=f"Licence {license.key_prefix} sold (content {license.content_id}, {pi_id})",
        posted_at=occurred_at,
    )


def _sale(pi_id: str) -> Transaction | None:
    return Transaction.objects.filter(source=SALE_SOURCE, idempotency_key=sale_key(pi_id)).first()


def _revoke(pi_id: str) -> License | None:
    license = License.objects.select_for_update().filter(stripe_payment_intent_id=pi_id).first()
    if license is not None and license.status != License.Status.REVOKED:
        license.status = License.Status.REVOKED
        license.save(update_fields=["status"])
    return license


def _reversed_so_far(sale: Transaction) -> int:
    """How much of ``sale``'s amount (its clearing debit) later entries have reversed."""
    total = Entry.objects.filter(transaction__reversal_of=sale, amount__lt=0).aggregate(
        total=Sum("amount")
    )["total"]
    return -int(total or 0)


@transaction.atomic
def license_charge_refunded(
    *, charge: Mapping[str, Any], occurred_at: datetime
) -> Transaction | None:
    """A refund on a licence's charge: reverse the refunded share of the sale posting (pro
    rata over fee and creators; key = the charge and its refunded total, so a redelivered
    event changes nothing) and, when refunded in full, revoke the licence."""
    pi_id = stripe_id(charge.get("payment_intent"))
    refunded = int(charge.get("amount_refunded") or 0)
    if not pi_id or refunded <= 0:
        return None
    if not License.objects.filter(stripe_payment_intent_id=pi_id).exists():
        return None
    if charge.get("refunded") or refunded >= int(charge.get("amount") or 0):
        _revoke(pi_id)
    sale = _sale(pi_id)
    if sale is None:
        return None
    key = f"stripe:content.refund:{stripe_id(charge.get('id'))}:{refunded}"
    existing = Transaction.objects.filter(source=REFUND_SOURCE, idempotency_key=key).first()
    if existing is not None:
        return existing
    part = min(refunded, int(charge.get("amount") or refunded)) - _reversed_so_far(sale)
    if part <= 0:
        return None
    return ledger_reverse(
        transaction=sale,
        amount=part,
        idempotency_key=key,
        source=REFUND_SOURCE,
        memo=f"Refund on licence payment {pi_id}",
        posted_at=occurred_at,
    )


@transaction.atomic
def license_dispute_closed(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> Transaction | None:
    """A lost dispute on a licence's payment: revoke it and reverse what is left of the sale
    (key ``stripe:content.dispute:<dispute id>``). Other outcomes change nothing."""
    if dispute.get("status") != "lost":
        return None
    pi_id = stripe_id(dispute.get("payment_intent"))
    if not pi_id:
        charge_id = stripe_id(dispute.get("charge"))
        data = djm.Charge.objects.filter(id=charge_id).values_list("stripe_data", flat=True).first()
        if data is None:
            with stripe_errors():
                data = stripe.Charge.retrieve(
                    charge_id, api_key=stripe_api_key(dispute.get("livemode"))
                ).to_dict()
        pi_id = stripe_id(data.get("payment_intent"))
    if not pi_id or _revoke(pi_id) is None:
        return None
    sale = _sale(pi_id)
    if sale is None:
        return None
    key = f"stripe:content.dispute:{dispute['id']}"
    existing = Transaction.objects.filter(source=DISPUTE_SOURCE, idempotency_key=key).first()
    if existing is not None:
        return existing
    if _reversed_so_far(sale) >= sum(
        e for e in sale.entries.filter(amount__gt=0).values_list("amount", flat=True)
    ):
        return None
    return ledger_reverse(
        transaction=sale,
        idempotency_key=key,
        source=DISPUTE_SOURCE,
        memo=f"Dispute {dispute['id']} lost on licence payment {pi_id}",
        posted_at=occurred_at,
    )
