"""Buying a licence with a one-time price, and what Stripe's payment events do to it.

- ``license_purchase``: the buyer's Stripe Customer (``billing_customer_ensure``, so a referred
  buyer's ``Referral`` is recognised), the tax for their country (``content.sales_tax``), a
  PENDING licence (its key generated now, returned once, only its hash kept), then a Stripe
  PaymentIntent for the Customer confirmed with the buyer's payment method (idempotency key
  from the licence's pk, ``metadata.content_license`` = the pk, the tax in ``metadata``). An
  exclusive licence type is checked under a row lock on the item before any charge: an ACTIVE
  or PENDING exclusive licence of the item answers 409. A declined or failed charge deletes
  the pending licence.
- ``license_payment_succeeded`` (``payment_intent.succeeded``, and the purchase itself when
  the charge succeeded synchronously): the licence becomes ACTIVE (``expires_at`` from the
  term), the referring affiliate's commission accrues and the sale is split in the ledger,
  once per PaymentIntent.
- ``license_payment_failed`` (``payment_intent.payment_failed`` / ``.canceled``): a PENDING
  licence whose PaymentIntent can no longer succeed is dropped, so an exclusive item is free.

Refunds and disputes (reversals, commission clawbacks, suspend / reinstate / revoke):
``content.sale_reversals``.

The split (``license_sale_split``; minor units of the licence's currency). From what the buyer
paid, the tax goes to ``liability.sales_tax_payable``; the rest (the sale net of tax) pays,
**off the top**, the referring affiliate's commission under its program's rules (the Gumroad
model: a referred sale costs the platform and the creators in proportion to their shares, and
the affiliate is paid the same whatever the item's fee); what is left is split between the
platform (its fee, plus the rounding) and the co-creators by their shares. The creators' total
is ``rest * (100 - fee) %`` rounded down, split by the shares with the largest remainder
method; the platform gets what is left, so tax + commission + platform + creators is exactly
what was paid.

Accounting: the sale posting (``content.license_sale``, key
``stripe:content.payment_intent:<pi>``) is Dr ``asset.stripe_clearing`` paid / Cr sales tax
payable / Cr ``revenue.content`` the platform fee plus the commission / Cr each co-creator's
payable. The commission is the affiliates app's own posting (``affiliates.commission``,
``commission_accrue_sale``): Dr ``revenue.content`` / Cr the affiliate's payable, so the
content revenue nets to the platform fee and holds, approval, fraud review, clawbacks and
payouts work for it as for any commission.

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
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from affiliates.services.commissions import commission_accrue_sale
from content.models import ContentItem, ContentShare, License, LicenseType
from content.sales_tax import SaleTax, payment_method_country, sale_tax
from content.services import PAYEE_TYPE, license_key_generate
from ledger.chart import SystemAccount
from ledger.models import Transaction
from ledger.services import Line, account_for_payee, ledger_post, system_account
from revenue_site.money import MoneyError, allocate, split_with_platform_remainder
from revenue_site.stripe_errors import BillingError, stripe_errors
from revenue_site.stripe_payloads import stripe_id
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.services.billing.customers import billing_customer_ensure

logger = logging.getLogger(__name__)

SALE_SOURCE = "content.license_sale"
REFUND_SOURCE = "content.license_refund"
DISPUTE_SOURCE = "content.license_dispute"
DISPUTE_WON_SOURCE = "content.license_dispute_won"
METADATA_KEY = "content_license"
HUNDRED = Decimal(100)
# A PaymentIntent in these states will not succeed without the buyer starting over.
PAYMENT_DEAD_STATES = frozenset({"requires_payment_method", "canceled"})
# States in which Stripe lets a PaymentIntent be canceled (processing and succeeded it refuses).
PAYMENT_CANCELABLE_STATES = frozenset(
    {"requires_payment_method", "requires_confirmation", "requires_action", "requires_capture"}
)


class ExclusiveLicenseTakenError(BillingError):
    """Someone else holds (or is paying for) the item's exclusive licence."""

    code = "license_taken"
    http_status = 409


def sale_key(payment_intent_id: str) -> str:
    return f"stripe:content.payment_intent:{payment_intent_id}"


def dispute_key(dispute_id: str) -> str:
    return f"stripe:content.dispute:{dispute_id}"


def dispute_won_key(dispute_id: str) -> str:
    return f"stripe:content.dispute.won:{dispute_id}"


# --- the split -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SaleSplit:
    """Where a sale's money goes (minor units); the parts add up to what was paid."""

    tax: int
    commission: int
    platform: int
    creators: list[tuple[int, int]]  # (creator id, minor units), in share order

    @property
    def total(self) -> int:
        return self.tax + self.commission + self.platform + sum(p for _, p in self.creators)


def license_sale_split(
    *,
    amount: int,
    platform_fee_percent: Decimal,
    shares: list[tuple[int, Decimal]],
    tax: int = 0,
    commission: int = 0,
) -> SaleSplit:
    """Split ``amount`` (what the buyer paid): ``tax``, then the affiliate's ``commission`` off
    the top of the rest, then the platform (its fee, plus the rounding) and the creators
    (``shares``: creator id and percent, totalling 100). The parts add up to ``amount``.

    Raises MoneyError when ``tax`` is not within the amount or ``commission`` not within what
    is left after tax.
    """
    if not 0 <= tax <= amount:
        raise MoneyError(f"tax {tax} is not within the amount paid {amount}")
    if not 0 <= commission <= amount - tax:
        raise MoneyError(f"commission {commission} is not within the sale net of tax")
    rest = amount - tax - commission
    rate = (HUNDRED - platform_fee_percent) / HUNDRED
    parts = split_with_platform_remainder(rest, {"creators": rate})
    creators_total = parts["creators"]
    if creators_total == 0:
        creators = [(cid, 0) for cid, _ in shares]
    else:
        amounts = allocate(creators_total, [percent for _, percent in shares])
        creators = [(cid, part) for (cid, _), part in zip(shares, amounts, strict=True)]
    return SaleSplit(tax=tax, commission=commission, platform=parts["platform"], creators=creators)


def _item_shares(item: ContentItem) -> list[tuple[int, Decimal]]:
    rows = list(
        ContentShare.objects.filter(item=item).order_by("pk").values_list("creator_id", "percent")
    )
    return rows or [(item.owner_id, HUNDRED)]


# --- purchase ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentStep:
    """A payment the buyer still has to complete in their browser (3-D Secure): Stripe.js
    ``handleNextAction`` with ``client_secret``; the licence turns ACTIVE on
    ``payment_intent.succeeded`` and is released after ``CONTENT_PENDING_PAYMENT_MINUTES``."""

    payment_intent: str
    status: str
    client_secret: str

    def as_dict(self) -> dict[str, str]:
        return {
            "payment_intent": self.payment_intent,
            "status": self.status,
            "client_secret": self.client_secret,
        }


@dataclass(frozen=True)
class Purchase:
    license: License
    key: str  # the full licence key: shown to the buyer this once, never stored
    payment: PaymentStep | None = None  # while the licence waits for the buyer's action


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


@dataclass(frozen=True)
class _Pending:
    purchase: Purchase
    tax: SaleTax


@transaction.atomic
def _pending_license_create(
    *,
    buyer: User,
    item_id: int,
    license_type_id: int,
    country: str = "",
    pricing: str = LicenseType.Pricing.ONE_TIME,
) -> _Pending:
    """A PENDING licence of ``pricing`` and the tax on its price in ``country`` (recurring and
    per-use sales share it, without a country: see ``content.recurring``, ``content.royalties``)."""
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
    tax = sale_tax(price=license_type.amount, country=country)
    new_key = license_key_generate()
    license = License.objects.create(
        license_type=license_type,
        content=item,
        holder=buyer,
        key_prefix=new_key.prefix,
        key_hash=new_key.key_hash,
        status=License.Status.PENDING,
        exclusive=exclusive,
        amount=tax.net,
        currency=license_type.currency,
    )
    return _Pending(purchase=Purchase(license=license, key=new_key.key), tax=tax)


def _buyer_country(payment_method: str) -> str:
    """The buyer's country from their payment method (only asked for when tax is configured)."""
    if not settings.CONTENT_TAX_RATES:
        return ""
    with stripe_errors(param_fields={"payment_method": "payment_method"}):
        method = stripe.PaymentMethod.retrieve(payment_method, api_key=stripe_api_key())
    return payment_method_country(method.to_dict())


def license_purchase(
    *, buyer: User, item_id: int, license_type_id: int, payment_method: str
) -> Purchase:
    """Buy a one-time licence of a published item with ``payment_method`` (a Stripe id).

    The PaymentIntent is for the buyer's Stripe Customer (created once, reused) and charges the
    price plus the tax for the buyer's country (or the price, tax included: ``content.sales_tax``);
    the licence's ``amount`` is the sale net of tax.

    Raises ContentItem.DoesNotExist (no such published item), ValidationError naming
    ``license_type`` or ``payment_method``, ExclusiveLicenseTakenError (409) before any
    charge, and the ``stripe_errors`` kinds (PaymentDeclined 402, ...), after which the
    pending licence is gone. Returns the licence (ACTIVE when the charge succeeded at once,
    else PENDING until ``payment_intent.succeeded``) and its key.
    """
    if not isinstance(payment_method, str) or not payment_method.strip():
        raise ValidationError({"payment_method": ["A Stripe payment method id."]})
    payment_method = payment_method.strip()
    # Refuse what cannot be bought before anything is created at Stripe (checked again under
    # the item's lock below).
    item = ContentItem.objects.filter(pk=item_id, status=ContentItem.Status.PUBLISHED).first()
    if item is None:
        raise ContentItem.DoesNotExist(f"no published item {item_id}")
    _sellable_license_type(item, license_type_id)
    _billing_customer, customer = billing_customer_ensure(user=buyer)
    country = _buyer_country(payment_method)
    pending = _pending_license_create(
        buyer=buyer, item_id=item_id, license_type_id=license_type_id, country=country
    )
    license, tax = pending.purchase.license, pending.tax
    try:
        with stripe_errors(param_fields={"payment_method": "payment_method"}):
            intent = stripe.PaymentIntent.create(
                amount=tax.total,
                currency=license.currency,
                customer=customer.id,
                payment_method=payment_method,
                payment_method_types=["card"],
                confirm=True,
                metadata={METADATA_KEY: str(license.pk), **tax.as_metadata()},
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
    step = None
    if license.status == License.Status.PENDING:
        step = PaymentStep(
            payment_intent=intent.id,
            status=str(data.get("status") or ""),
            client_secret=str(data.get("client_secret") or ""),
        )
    return Purchase(license=license, key=pending.purchase.key, payment=step)


# --- payment events ------------------------------------------------------------------------


def _license_pk(payment_intent: Mapping[str, Any]) -> int | None:
    metadata = payment_intent.get("metadata")
    value = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _metadata_tax(payment_intent: Mapping[str, Any]) -> int:
    metadata = payment_intent.get("metadata")
    value = metadata.get("tax_amount") if isinstance(metadata, Mapping) else None
    try:
        return max(0, int(value)) if value is not None else 0
    except (TypeError, ValueError):
        return 0


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
    """Activate the licence a PaymentIntent paid for, accrue the referring affiliate's
    commission and book the split (once per intent; see the module docstring).

    Returns the sale posting, or None for intents that are not licence purchases. A payment
    for a licence that no longer exists (its purchase failed on our side, or its payment
    failed first) is refunded.
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
    booked = sale_posting(pi_id)
    if booked is not None:
        return booked
    if license.status != License.Status.PENDING:
        return None  # revoked (refunded) before its payment event was processed
    paid = int(payment_intent.get("amount_received") or payment_intent.get("amount") or 0)
    currency = str(payment_intent.get("currency") or license.currency).lower()
    tax = min(_metadata_tax(payment_intent), paid)
    if paid <= 0:
        return None
    license.status = License.Status.ACTIVE
    license.issued_at = occurred_at
    license.stripe_payment_intent_id = pi_id
    term = license.license_type.term_days
    license.expires_at = occurred_at + timedelta(days=term) if term else None
    license.save(update_fields=["status", "issued_at", "expires_at", "stripe_payment_intent_id"])

    commission = commission_accrue_sale(
        payment_intent_id=pi_id,
        customer_id=stripe_id(payment_intent.get("customer")),
        base_amount=paid - tax,
        currency=currency,
        paid_at=occurred_at,
        funded_by=SystemAccount.REVENUE_CONTENT,
    )
    split = license_sale_split(
        amount=paid,
        tax=tax,
        commission=commission.amount if commission is not None else 0,
        platform_fee_percent=license.content.effective_platform_fee_percent,
        shares=_item_shares(license.content),
    )
    lines = [Line.debit(system_account(SystemAccount.STRIPE_CLEARING), paid, currency)]
    if split.tax:
        lines.append(
            Line.credit(system_account(SystemAccount.SALES_TAX_PAYABLE), split.tax, currency)
        )
    # The commission is credited to content revenue here and moved from it to the affiliate
    # by the commission's own posting (commission_accrue_sale), so it can be clawed back alone.
    if split.platform + split.commission:
        lines.append(
            Line.credit(
                system_account(SystemAccount.REVENUE_CONTENT),
                split.platform + split.commission,
                currency,
            )
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


@transaction.atomic
def license_payment_failed(*, payment_intent: Mapping[str, Any], occurred_at: datetime) -> bool:
    """A licence payment failed or was canceled: drop its PENDING licence (so an exclusive
    item is free for other buyers again). Returns whether a licence was dropped.

    Out-of-order safe: a licence that is no longer PENDING was activated by a success, whose
    event is necessarily later than any failure of the same PaymentIntent (``succeeded`` is
    final; ``issued_at`` is that event's ``created``), so an older failure changes nothing.
    A PENDING one is dropped only when Stripe says the PaymentIntent is still dead now
    (``requires_payment_method`` or ``canceled``): a failure delivered after a retry that is
    processing or succeeded (its event still on the way) keeps the licence. Idempotent: a
    dropped licence is gone, a redelivered event finds nothing.
    """
    pk = _license_pk(payment_intent)
    if pk is None:
        return False
    pi_id = stripe_id(payment_intent.get("id"))
    license = License.objects.select_for_update().filter(pk=pk).first()
    if license is None:
        return False
    if license.status != License.Status.PENDING or (
        license.issued_at is not None and license.issued_at >= occurred_at
    ):
        return False
    if license.stripe_payment_intent_id and license.stripe_payment_intent_id != pi_id:
        return False  # an event about another PaymentIntent than the licence's
    with stripe_errors():
        current = stripe.PaymentIntent.retrieve(
            pi_id, api_key=stripe_api_key(payment_intent.get("livemode"))
        )
    if current.status not in PAYMENT_DEAD_STATES:
        return False
    logger.info("licence %s dropped: payment %s is %s", pk, pi_id, current.status)
    license.delete()
    return True


# --- payments left unfinished --------------------------------------------------------------


def pending_payment_settle(*, license_pk: int, payment_intent_id: str, now: datetime) -> bool:
    """A one-time licence still PENDING past the wait (``content.acquire.
    pending_licenses_release``): what Stripe says of its PaymentIntent now decides.
    ``succeeded`` (its event missed or late) activates it as the event would; a cancelable one
    is canceled (``abandoned``) and the licence dropped; ``processing`` is left to finish. With
    no PaymentIntent (the request died before Stripe answered) the licence is dropped; a
    payment that succeeded anyway is refunded when its event arrives
    (``license_payment_succeeded``). Returns whether the licence was dropped or activated."""
    if not payment_intent_id:
        dropped, _ = License.objects.filter(
            pk=license_pk, status=License.Status.PENDING, stripe_payment_intent_id=""
        ).delete()
        if dropped:
            logger.info("licence %s dropped: its payment was never created", license_pk)
        return bool(dropped)
    with stripe_errors():
        intent = stripe.PaymentIntent.retrieve(payment_intent_id, api_key=stripe_api_key())
    status = intent.status
    if status == "succeeded":
        return (
            license_payment_succeeded(payment_intent=intent.to_dict(), occurred_at=now) is not None
        )
    if status in PAYMENT_CANCELABLE_STATES:
        # A key per run: Stripe replays a failed answer to the same key for a day, and each
        # run reads the intent's state first, so a later run's cancel is a new request.
        with stripe_errors():
            intent = stripe.PaymentIntent.cancel(
                payment_intent_id,
                cancellation_reason="abandoned",
                api_key=stripe_api_key(),
                idempotency_key=f"content-license-pi-abandon-{license_pk}-{now:%Y%m%dT%H%M%S}",
            )
        status = intent.status
    if status != "canceled":
        return False  # processing: it ends in succeeded or requires_payment_method
    return license_payment_failed(payment_intent=intent.to_dict(), occurred_at=now)


def sale_posting(payment_intent_id: str) -> Transaction | None:
    """The sale posting of a licence payment, if booked."""
    return Transaction.objects.filter(
        source=SALE_SOURCE, idempotency_key=sale_key(payment_intent_id)
    ).first()
