"""Usage royalties: per-use licences and overage, billed at the monthly period close and split
to the creators when the invoice is paid; and the split of any invoice's content revenue.

- ``license_issue_per_use``: a per-use licence is issued at once, without a charge, to a buyer
  whose Stripe customer has the payment method on file (attached now; made the invoice default
  when the customer has none), so the period close can charge it.
- ``ContentRoyalties``, the period close's charge source ``content``
  (``marketplace.period_close.charge_source_register``): per customer and period, each per-use
  licence's accepted uses and each limited licence's **overage** (units used past a limit
  under an overage allowance; limits count over the licence's life, so a period's overage is
  what was over the limit at its end less what already was at its start) become one charge
  each, priced at the licence type's per-use rate by the metering engine's rating
  (``marketplace.rating``, a per-unit price rounded once). A per-use licence's overage is not
  billed again: each of its uses already is. Those charges go on the customer's monthly usage
  invoice beside the API usage lines.
- ``royalty_invoice_paid`` (``invoice.paid``): each content line's share of the invoice's
  revenue (``period_close.invoice_source_lines``: paid less tax, over the lines) is split to
  the item's creators and the platform fee with ``license_sale_split``, the function one-time
  sales use; one posting per invoice line.
- ``content_invoice_refunded`` (``charge.refunded``): a refund of an invoice reverses the share
  refunded of every content split booked for it (per-use lines and recurring licences alike);
  a dispute reverses the disputed share when it opens and books it back when it is won
  (``content_invoice_disputed`` / ``content_invoice_dispute_won``), as the invoice postings
  do for the invoice's revenue.

Accounting. The invoice itself is booked by the subscriptions app's invoice postings (Dr
clearing / Cr the invoice's revenue account / Cr tax payable; refunds and disputes reversed
there), so nothing is booked twice; ``revenue_split_post`` then moves the content revenue on:
Dr that revenue account the line's revenue / Cr ``revenue.content`` the platform fee / Cr each
creator's payable their share. When the invoice's account is ``revenue.content`` (a recurring
licence, an invoice of royalties only) only the creators' shares move. Either way
``revenue.content`` ends holding the platform fee and the creators their shares, exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import stripe
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import User
from content.models import LIMIT_FOR_EVENT, ContentItem, License, LicenseType, LicenseUsage
from content.purchases import (
    Purchase,
    _item_shares,
    _pending_license_create,
    license_sale_split,
)
from content.services import PAYEE_TYPE
from ledger.chart import SystemAccount
from ledger.models import Entry, Transaction
from ledger.services import Line, account_for_payee, ledger_post, ledger_reverse, system_account
from marketplace import rating
from marketplace.period_close import SourceCharge, invoice_source_lines
from revenue_site.money import apply_rate
from revenue_site.stripe_errors import BillingError, BillingInputError, stripe_errors
from revenue_site.stripe_payloads import dispute_is_inquiry, stripe_id, stripe_time
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.services.billing import billing_customer_ensure
from subscriptions.services.invoice_payments import invoice_id_for_charge
from subscriptions.services.invoice_postings import (
    INVOICE_PAID_SOURCE,
    _dispute_invoice_id,
    invoice_paid_key,
    invoice_revenue_account,
)

logger = logging.getLogger(__name__)

CHARGE_SOURCE = "content"
SPLIT_SOURCE = "content.invoice_split"
SPLIT_REFUND_SOURCE = "content.invoice_split_refund"
SPLIT_DISPUTE_SOURCE = "content.invoice_split_dispute"
SPLIT_DISPUTE_WON_SOURCE = "content.invoice_split_dispute_won"
USES, OVERAGE = "uses", "overage"


def _reversed_so_far(split: Transaction) -> int:
    """How much of ``split``'s amount (its clearing debit) later entries have reversed."""
    total = Entry.objects.filter(transaction__reversal_of=split, amount__lt=0).aggregate(
        total=Sum("amount")
    )["total"]
    return -int(total or 0)


def split_key(invoice_id: str, what: str) -> str:
    """The key of a content split booked for an invoice: ``what`` is ``line-<charge line pk>``
    (a royalty line) or ``license-<pk>`` (a recurring licence's invoice)."""
    return f"stripe:content.invoice:{invoice_id}:{what}"


# --- the split of an invoice's content revenue ---------------------------------------------


def revenue_split_post(
    *,
    item: ContentItem,
    revenue: int,
    currency: str,
    from_account: SystemAccount,
    idempotency_key: str,
    memo: str,
    posted_at: datetime,
) -> Transaction | None:
    """Move ``revenue`` (booked to ``from_account`` by the invoice postings) to the item's
    creators and the platform fee; see the module docstring. None when nothing moves."""
    split = license_sale_split(
        amount=revenue,
        platform_fee_percent=item.effective_platform_fee_percent,
        shares=_item_shares(item),
    )
    creators = [(creator_id, part) for creator_id, part in split.creators if part]
    lines: list[Line] = []
    if from_account == SystemAccount.REVENUE_CONTENT:
        moved = sum(part for _, part in creators)
        if moved:
            lines.append(Line.debit(system_account(from_account), moved, currency))
    elif revenue:
        lines.append(Line.debit(system_account(from_account), revenue, currency))
        if split.platform:
            content = system_account(SystemAccount.REVENUE_CONTENT)
            lines.append(Line.credit(content, split.platform, currency))
    if not lines:
        return None
    for creator_id, part in creators:
        payable = account_for_payee(payee_type=PAYEE_TYPE, payee_id=creator_id)
        lines.append(Line.credit(payable, part, currency))
    return ledger_post(
        idempotency_key=idempotency_key,
        source=SPLIT_SOURCE,
        lines=lines,
        memo=memo[:500],
        posted_at=posted_at,
    )


@transaction.atomic
def content_invoice_refunded(
    *, charge: Mapping[str, Any], occurred_at: datetime
) -> list[Transaction]:
    """A refund on an invoice's charge: reverse the refunded share (the charge's refunded
    total over its amount) of each content split booked for that invoice, less what earlier
    refunds reversed. Key: the charge, its refunded total and the split, so a redelivered
    event changes nothing. Charges outside invoices: []."""
    refunded = int(charge.get("amount_refunded") or 0)
    charged = int(charge.get("amount") or 0)
    if refunded <= 0 or charged <= 0:
        return []
    invoice_id = invoice_id_for_charge(charge=charge)
    if not invoice_id:
        return []
    splits = _invoice_splits(invoice_id)
    charge_id = stripe_id(charge.get("id"))
    done = []
    for split in splits:
        key = f"stripe:content.refund:{charge_id}:{refunded}:{split.pk}"
        existing = Transaction.objects.filter(source=SPLIT_REFUND_SOURCE, idempotency_key=key)
        if existing.exists():
            done.append(existing.get())
            continue
        gross = sum(split.entries.filter(amount__gt=0).values_list("amount", flat=True))
        target = gross if refunded >= charged else apply_rate(gross, Decimal(refunded) / charged)
        part = target - _reversed_so_far(split)
        if part <= 0:
            continue
        done.append(
            ledger_reverse(
                transaction=split,
                amount=part,
                idempotency_key=key,
                source=SPLIT_REFUND_SOURCE,
                memo=f"Refund on charge {charge_id} (invoice {invoice_id})",
                posted_at=occurred_at,
            )
        )
    return done


def _invoice_splits(invoice_id: str) -> list[Transaction]:
    return list(
        Transaction.objects.filter(
            source=SPLIT_SOURCE, idempotency_key__startswith=split_key(invoice_id, "")
        ).order_by("pk")
    )


@transaction.atomic
def content_invoice_disputed(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> list[Transaction]:
    """A dispute withdrew funds of an invoice's charge (``charge.dispute.created``, or an
    inquiry escalating): reverse the disputed share (its amount over the invoice's booked
    total) of each content split of that invoice, as the invoice postings reverse the
    invoice's revenue. Key: the dispute and the split. Inquiries and charges outside
    invoices: []; a replay returns the reversals booked."""
    if dispute_is_inquiry(dispute):
        return []
    invoice_id = _dispute_invoice_id(dispute)
    if not invoice_id:
        return []
    booked = Transaction.objects.filter(
        source=INVOICE_PAID_SOURCE, idempotency_key=invoice_paid_key(invoice_id)
    ).first()
    amount = int(dispute.get("amount") or 0)
    charged = (
        sum(booked.entries.filter(amount__gt=0).values_list("amount", flat=True))
        if booked is not None
        else amount
    )
    if amount <= 0 or charged <= 0:
        return []
    done = []
    for split in _invoice_splits(invoice_id):
        key = f"stripe:content.dispute:{dispute['id']}:{split.pk}"
        existing = Transaction.objects.filter(source=SPLIT_DISPUTE_SOURCE, idempotency_key=key)
        if existing.exists():
            done.append(existing.get())
            continue
        gross = sum(split.entries.filter(amount__gt=0).values_list("amount", flat=True))
        share = gross if amount >= charged else apply_rate(gross, Decimal(amount) / charged)
        part = min(share, gross - _reversed_so_far(split))
        if part <= 0:
            continue
        done.append(
            ledger_reverse(
                transaction=split,
                amount=part,
                idempotency_key=key,
                source=SPLIT_DISPUTE_SOURCE,
                memo=f"Dispute {dispute['id']} (invoice {invoice_id})",
                posted_at=occurred_at,
            )
        )
    return done


@transaction.atomic
def content_invoice_dispute_won(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> list[Transaction]:
    """A dispute the merchant won: book back what its opening reversed of each split (the
    reversal's lines negated, once per dispute and split), booking the opening first if its
    event has not been processed yet."""
    opened_at = stripe_time(dispute.get("created")) or occurred_at
    postings = []
    for reversal in content_invoice_disputed(dispute=dispute, occurred_at=opened_at):
        lines = [
            Line(entry.account, -entry.amount, entry.currency)
            for entry in reversal.entries.select_related("account").order_by("pk")
        ]
        postings.append(
            ledger_post(
                idempotency_key=f"stripe:content.dispute.won:{dispute['id']}:"
                f"{reversal.reversal_of_id}",
                source=SPLIT_DISPUTE_WON_SOURCE,
                lines=lines,
                memo=f"Dispute {dispute['id']} won: {reversal.memo}"[:500],
                posted_at=occurred_at,
            )
        )
    return postings


def content_invoice_dispute_closed(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> list[Transaction]:
    """``won``: book back (``content_invoice_dispute_won``); ``lost``: the opening's reversal
    stands (booked now if its event was not processed); other statuses: nothing."""
    if dispute.get("status") == "won":
        return content_invoice_dispute_won(dispute=dispute, occurred_at=occurred_at)
    if dispute.get("status") == "lost":
        opened_at = stripe_time(dispute.get("created")) or occurred_at
        content_invoice_disputed(dispute=dispute, occurred_at=opened_at)
    return []


# --- per-use licences ----------------------------------------------------------------------


def license_issue_per_use(
    *, buyer: User, item_id: int, license_type_id: int, payment_method: str
) -> Purchase:
    """Issue a per-use licence: ACTIVE at once (``expires_at`` from the term), amount 0, its
    uses billed at each period close. ``payment_method`` is attached to the buyer's Stripe
    customer (and becomes its invoice default when it has none), so the close can charge it.

    Raises ContentItem.DoesNotExist, ValidationError naming ``license_type`` or
    ``payment_method``, and the ``stripe_errors`` kinds (after which no licence is left)."""
    if not isinstance(payment_method, str) or not payment_method.strip():
        raise ValidationError({"payment_method": ["A Stripe payment method id."]})
    payment_method = payment_method.strip()
    purchase = _pending_license_create(
        buyer=buyer,
        item_id=item_id,
        license_type_id=license_type_id,
        pricing=LicenseType.Pricing.PER_USE,
    ).purchase
    license = purchase.license
    try:
        _payment_method_on_file(user=buyer, payment_method=payment_method)
    except BillingError:
        License.objects.filter(pk=license.pk, status=License.Status.PENDING).delete()
        raise
    now = timezone.now()
    term = license.license_type.term_days
    License.objects.filter(pk=license.pk).update(
        status=License.Status.ACTIVE,
        issued_at=now,
        expires_at=now + timedelta(days=term) if term else None,
        amount=0,
    )
    license.refresh_from_db()
    return Purchase(license=license, key=purchase.key)


@stripe_errors(param_fields={"payment_method": "payment_method"})
def _payment_method_on_file(*, user: User, payment_method: str) -> str:
    """Attach ``payment_method`` to the user's Stripe customer (once: the key is the customer
    and the method) and make it the invoice default if the customer has none."""
    billing_customer, customer = billing_customer_ensure(user=user)
    try:
        method = stripe.PaymentMethod.attach(
            payment_method,
            customer=customer.id,
            api_key=stripe_api_key(),
            idempotency_key=f"pm-attach-{billing_customer.pk}-{payment_method}",
        )
    except stripe.InvalidRequestError as exc:
        raise BillingInputError(
            exc.user_message or "Unknown payment method.", field="payment_method"
        ) from exc
    settings_ = (customer.stripe_data or {}).get("invoice_settings") or {}
    if not settings_.get("default_payment_method"):
        stripe.Customer.modify(
            customer.id,
            invoice_settings={"default_payment_method": method.id},
            api_key=stripe_api_key(),
            idempotency_key=f"content-invoice-default-pm-{billing_customer.pk}-{method.id}",
        )
    return str(method.id)


# --- the period close's charge source ------------------------------------------------------


def _billed_licenses() -> Q:
    """Licences whose usage is billed: per-use ones, and limited ones allowed over."""
    return Q(license_type__pricing=LicenseType.Pricing.PER_USE) | ~Q(
        license_type__overage=LicenseType.Overage.BLOCK
    )


def _charge(license: License, *, kind: str, quantity: int, start: datetime) -> SourceCharge | None:
    license_type = license.license_type
    if quantity <= 0 or not license_type.per_use_unit_amount:
        return None
    price = rating.Price(
        model=rating.PerUnit(unit_amount=Decimal(license_type.per_use_unit_amount)),
        currency=license_type.currency,
    )
    rated = rating.rate(price, quantity)
    what = "uses" if kind == USES else "uses over the licence's limits"
    return SourceCharge(
        reference=f"license-{license.pk}-{kind}",
        description=f"{license.content.title}: {quantity} {what} "
        f"(licence {license.key_prefix}), {start:%Y-%m}",
        quantity=rated.quantity,
        amount=rated.amount,
        currency=rated.currency,
    )


class ContentRoyalties:
    """The period close's charge source for content usage (see the module docstring)."""

    revenue_account = SystemAccount.REVENUE_CONTENT

    def customers(self, *, start: datetime, end: datetime) -> Iterable[int]:
        billed = Q(license__license_type__pricing=LicenseType.Pricing.PER_USE) | ~Q(
            license__license_type__overage=LicenseType.Overage.BLOCK
        )
        return set(
            LicenseUsage.objects.filter(at__gte=start, at__lt=end, denied=False)
            .filter(billed)
            .values_list("license__holder_id", flat=True)
            .distinct()
        )

    def charges(self, *, customer: User, start: datetime, end: datetime) -> list[SourceCharge]:
        licenses = {
            license.pk: license
            for license in License.objects.filter(holder=customer)
            .filter(_billed_licenses())
            .filter(usages__at__gte=start, usages__at__lt=end, usages__denied=False)
            .select_related("license_type", "content")
            .distinct()
        }
        if not licenses:
            return []
        used: dict[int, dict[str, tuple[int, int]]] = {pk: {} for pk in licenses}
        rows = (
            LicenseUsage.objects.filter(license_id__in=licenses, denied=False, at__lt=end)
            .values("license_id", "event")
            .annotate(
                before=Sum("quantity", filter=Q(at__lt=start), default=0),
                through=Sum("quantity", default=0),
            )
            .order_by()
        )
        for row in rows:
            used[row["license_id"]][row["event"]] = (int(row["before"]), int(row["through"]))
        charges: list[SourceCharge] = []
        for pk in sorted(licenses):
            license, counts = licenses[pk], used[pk]
            if license.license_type.pricing == LicenseType.Pricing.PER_USE:
                uses = sum(through - before for before, through in counts.values())
                charge = _charge(license, kind=USES, quantity=uses, start=start)
            else:
                charge = _charge(
                    license, kind=OVERAGE, quantity=_overage(license, counts), start=start
                )
            if charge is not None:
                charges.append(charge)
        return charges


def _overage(license: License, counts: Mapping[str, tuple[int, int]]) -> int:
    """Units over the licence's limits used in the period (limits count over its life)."""
    limits = license.license_type.limits or {}
    total = 0
    for event, name in LIMIT_FOR_EVENT.items():
        if name not in limits or event not in counts:
            continue
        limit = int(limits[name])
        before, through = counts[event]
        total += max(0, through - limit) - max(0, before - limit)
    return total


# --- paid ----------------------------------------------------------------------------------


def _license_pk(reference: str) -> int | None:
    """``license-<pk>-<kind>`` → pk."""
    parts = reference.split("-")
    if len(parts) != 3 or parts[0] != "license" or not parts[1].isdigit():
        return None
    return int(parts[1])


@transaction.atomic
def royalty_invoice_paid(*, invoice: Mapping[str, Any], occurred_at: datetime) -> list[Transaction]:
    """Split each content line of a paid period invoice to the licensed item's creators and
    the platform fee (one posting per line, key ``split_key(invoice, "line-<pk>")``).
    Other invoices: []."""
    paid_lines = invoice_source_lines(invoice=invoice, source=CHARGE_SOURCE)
    if not paid_lines:
        return []
    invoice_id = stripe_id(invoice.get("id"))
    currency = str(invoice.get("currency") or "").lower()
    from_account = invoice_revenue_account(invoice)
    pks = {_license_pk(paid.line.reference) for paid in paid_lines}
    licenses = License.objects.select_related("content__owner").in_bulk(
        [pk for pk in pks if pk is not None]
    )
    postings = []
    for paid in paid_lines:
        license = licenses.get(_license_pk(paid.line.reference) or 0)
        if license is None:  # licences are never deleted once issued (PROTECT)
            logger.error("invoice %s: no licence for line %s", invoice_id, paid.line.pk)
            continue
        posting = revenue_split_post(
            item=license.content,
            revenue=paid.revenue,
            currency=currency,
            from_account=from_account,
            idempotency_key=split_key(invoice_id, f"line-{paid.line.pk}"),
            memo=f"Royalties of licence {license.key_prefix} on invoice {invoice_id}: "
            f"{paid.line.description}",
            posted_at=occurred_at,
        )
        if posting is not None:
            postings.append(posting)
    return postings
