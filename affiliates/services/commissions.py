"""Commissions: accrue on paid invoices and one-time sales, approve after the hold, review,
claw back (issue 4 §4, issue 11 §5).

Accrual (``commission_accrue``, from the ``invoice.paid`` receiver; ``commission_accrue_sale``
for a one-time sale paid by a PaymentIntent, from the content licence purchase, with the same
rules on the sale's amount net of tax):

- the base is the invoice's ``amount_paid`` less tax, in the invoice's currency;
- **percent** rules: ``base * rate / 100`` rounded to whole minor units ROUND_HALF_UP, once per
  commission (``revenue_site.money.apply_rate``); **flat** rules pay ``commission_flat_amount``
  on the referral's first paid invoice only (a conversion), and only when the invoice's currency
  is the program's;
- duration: *first payment* pays the referral's first paid invoice only; *recurring N months*
  pays invoices paid before first-paid-at + N calendar months (so the (N+1)-th monthly invoice
  gets nothing); *lifetime* pays every invoice. "The referral's first paid invoice" is the
  earliest invoice that accrued a commission for the referral (the first invoice paid while the
  customer was referred always does);
- tiers: the rate of the highest tier whose ``min_revenue`` is at most the affiliate's referred
  revenue in the invoice's calendar month (UTC), counted as the sum of ``base_amount`` of the
  affiliate's commissions paid that month in that currency **including this invoice**; rows
  are serialised per affiliate by locking the affiliate, so concurrent invoices see each other;
- the rule as applied is snapshotted in ``Commission.rule``.

The commission starts HELD with ``available_at = paid_at + hold_days`` and is posted to the
ledger at once: Dr ``expense.commissions`` / Cr the affiliate's payable, key
``affiliate-commission:<pk>``. Money on HELD commissions is in the payable but not payable yet;
the payout engine withholds it (``affiliate_withheld``).

Refunds and disputes claw back (and won disputes give back): ``affiliates.services.clawbacks``.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from djstripe import models as djm

from accounts.models import User
from accounts.services import email_queue
from affiliates.models import Affiliate, Commission, Program, Referral
from affiliates.services.fraud import commission_flags
from ledger.chart import SystemAccount
from ledger.exceptions import InvalidReversalError
from ledger.models import Payout, Transaction
from ledger.services import (
    Line,
    account_for_payee,
    ledger_post,
    ledger_reverse_in_order,
    system_account,
)
from revenue_site.money import apply_rate, format_money
from revenue_site.stripe_payloads import invoice_paid_at, invoice_tax, stripe_id
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)

COMMISSION_SOURCE = "affiliates.commission"
CLAWBACK_SOURCE = "affiliates.clawback"
REINSTATED_SOURCE = "affiliates.commission_reinstated"
PAYEE_TYPE = "affiliate"


def commission_key(commission: Commission) -> str:
    return f"affiliate-commission:{commission.pk}"


def _add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    moment = moment.astimezone(UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, _add_months(start, 1)


def _tier_rate(program: Program, month_revenue: int) -> tuple[Decimal, dict[str, Any] | None]:
    chosen = None
    for tier in sorted(program.tiers or [], key=lambda t: int(t.get("min_revenue") or 0)):
        if int(tier.get("min_revenue") or 0) <= month_revenue:
            chosen = tier
    if chosen is None:
        return Decimal(program.commission_rate), None
    return Decimal(str(chosen["rate"])), chosen


@transaction.atomic
def commission_accrue(*, invoice: Mapping[str, Any], occurred_at: datetime) -> Commission | None:
    """Create the HELD commission a referred customer's paid invoice earns, once per invoice.

    Returns the commission (the existing one on a replay), or None when the customer was not
    referred, nothing was paid, the affiliate is not approved, or the program's rule pays
    nothing for this invoice (duration over, flat after the first payment). Runs the fraud rules
    and stores their reasons in ``flags``. Posted Dr ``expense.commissions`` (the platform pays
    it out of its subscription revenue) / Cr the affiliate's payable.

    "First payment" is the first as paid, not as delivered: a renewal or change invoice
    (``billing_reason`` ``subscription_cycle`` / ``_update`` / ``_threshold``) accrued while
    the referral has no commission yet asks Stripe for the customer's earlier paid invoices
    (their ``invoice.paid`` may still be on the way), for programs whose rule depends on it
    (first payment only, recurring for N months, flat). Raises the ``stripe`` errors of that
    call (the event is retried).
    """
    invoice_id = stripe_id(invoice.get("id"))
    if not invoice_id:
        return None
    paid = int(invoice.get("amount_paid") or 0)
    return _commission_accrue(
        source=PaidDocument(stripe_invoice_id=invoice_id),
        customer_id=stripe_id(invoice.get("customer")),
        base=paid - min(invoice_tax(invoice), paid),
        currency=str(invoice["currency"]).lower(),
        paid_at=invoice_paid_at(invoice) or occurred_at,
        funded_by=SystemAccount.COMMISSION_EXPENSE,
        cap_at_base=False,
        renewal=invoice.get("billing_reason") in RENEWAL_BILLING_REASONS,
    )


@transaction.atomic
def commission_accrue_sale(
    *,
    payment_intent_id: str,
    customer_id: str,
    base_amount: int,
    currency: str,
    paid_at: datetime,
    funded_by: SystemAccount,
) -> Commission | None:
    """Create the HELD commission a referred customer's one-time sale earns (a content
    licence paid by a PaymentIntent), once per PaymentIntent.

    ``base_amount`` is what was paid net of tax (minor units of ``currency``). The program's
    rules apply as to invoices: each sale is one of the referral's payments (the duration
    counts from the referral's first commissioned payment, whatever it paid for; a flat rule
    pays on that first payment only), tiers count it in the month's referred revenue. The
    commission is never more than ``base_amount`` (it is paid out of the sale). It is posted
    Dr ``funded_by`` (the account the sale's seller booked the money to, e.g.
    ``revenue.content``) / Cr the affiliate's payable, key ``affiliate-commission:<pk>``, so
    approval, review, clawbacks and payouts treat it like any other commission. Returns None
    like ``commission_accrue``.
    """
    if not payment_intent_id or not customer_id:
        return None
    return _commission_accrue(
        source=PaidDocument(stripe_payment_intent_id=payment_intent_id),
        customer_id=customer_id,
        base=base_amount,
        currency=currency.lower(),
        paid_at=paid_at,
        funded_by=funded_by,
        cap_at_base=True,
        renewal=False,
    )


# Invoices of a subscription after its first: an earlier payment of the customer exists.
RENEWAL_BILLING_REASONS = frozenset(
    {"subscription_cycle", "subscription_update", "subscription_threshold"}
)
# Invoices paid this long before the referral was recorded still count as the affiliate's (a
# subscribe call whose first invoice is paid moments before the referral it carried).
REFERRAL_MARGIN = timedelta(minutes=5)


def _earlier_paid_invoice_at(
    *, customer_id: str, paid_at: datetime, since: datetime, invoice_id: str
) -> datetime | None:
    """When the customer's first invoice paid (net of tax > 0) since ``since`` and before this
    payment (``paid_at``; same second: by invoice id, as ``commissions_accrue_for_referral``
    orders them) was paid, asking Stripe (its ``invoice.paid`` may not have arrived yet);
    None when this payment is the first."""
    listing = stripe.Invoice.list(
        customer=customer_id,
        status="paid",
        created={"gte": int((since - timedelta(days=1)).timestamp())},
        limit=100,
        api_key=stripe_api_key(settings.STRIPE_LIVE_MODE),
    )
    found: list[datetime] = []
    for listed in listing.auto_paging_iter():
        data = listed.to_dict()
        at = invoice_paid_at(data)
        paid = int(data.get("amount_paid") or 0)
        if at is None or at < since or paid - min(invoice_tax(data), paid) <= 0:
            continue
        if (at, str(data.get("id"))) < (paid_at, invoice_id or "~"):
            found.append(at)
    return min(found, default=None)


@dataclass(frozen=True)
class PaidDocument:
    """What a commission is earned on: an invoice, or a one-time sale's PaymentIntent."""

    stripe_invoice_id: str = ""
    stripe_payment_intent_id: str = ""

    @property
    def lookup(self) -> dict[str, str]:
        if self.stripe_invoice_id:
            return {"stripe_invoice_id": self.stripe_invoice_id}
        return {"stripe_payment_intent_id": self.stripe_payment_intent_id}

    @property
    def label(self) -> str:
        if self.stripe_invoice_id:
            return f"invoice {self.stripe_invoice_id}"
        return f"sale {self.stripe_payment_intent_id}"


def _commission_accrue(
    *,
    source: PaidDocument,
    customer_id: str,
    base: int,
    currency: str,
    paid_at: datetime,
    funded_by: SystemAccount,
    cap_at_base: bool,
    renewal: bool,
) -> Commission | None:
    referral = (
        Referral.objects.select_related("affiliate__program", "affiliate__user")
        .filter(stripe_customer_id=customer_id)
        .first()
    )
    if referral is None or not customer_id or base <= 0:
        return None
    # Serialise accruals per affiliate: tiers read this month's earlier commissions.
    affiliate = Affiliate.objects.select_for_update().get(pk=referral.affiliate_id)
    existing = Commission.objects.filter(**source.lookup, affiliate=affiliate).first()
    if existing is not None:
        return existing
    if affiliate.status != Affiliate.Status.APPROVED:
        logger.info("%s: affiliate %s is %s", source.label, affiliate.pk, affiliate.status)
        return None
    program = referral.affiliate.program

    first = referral.commissions.order_by("paid_at_invoice", "pk").first()
    first_paid_at = first.paid_at_invoice if first is not None else None
    if (
        first is None
        and renewal
        and (
            program.duration != Program.Duration.LIFETIME
            or program.commission_type == Program.CommissionType.FLAT
        )
    ):
        # Out-of-order delivery: a renewal's invoice.paid may come before the first invoice's.
        # The rule counts from the referral's first payment as it happened, not as delivered.
        first_paid_at = _earlier_paid_invoice_at(
            customer_id=customer_id,
            paid_at=paid_at,
            since=referral.referred_at - REFERRAL_MARGIN,
            invoice_id=source.stripe_invoice_id,
        )
    is_first = first_paid_at is None
    rule: dict[str, Any] = {
        "program": program.pk,
        "type": program.commission_type,
        "duration": program.duration,
        "recurring_months": program.recurring_months,
        "hold_days": program.hold_days,
        "first_payment": is_first,
    }
    if first_paid_at is not None:
        if program.duration == Program.Duration.FIRST_PAYMENT:
            return None
        if program.duration == Program.Duration.RECURRING:
            ends = _add_months(first_paid_at, int(program.recurring_months or 0))
            if paid_at >= ends:
                return None
            rule["recurring_until"] = ends.isoformat()

    if program.commission_type == Program.CommissionType.FLAT:
        if not is_first or program.commission_flat_amount is None or currency != program.currency:
            return None
        amount = int(program.commission_flat_amount)
        rule["flat_amount"] = amount
    else:
        start, end = _month_bounds(paid_at)
        earlier = Commission.objects.filter(
            affiliate=affiliate,
            currency=currency,
            paid_at_invoice__gte=start,
            paid_at_invoice__lt=end,
        ).aggregate(total=Sum("base_amount"))["total"]
        month_revenue = int(earlier or 0) + base
        rate, tier = _tier_rate(program, month_revenue)
        amount = apply_rate(base, rate / 100)
        rule.update(rate=str(rate), rounding="ROUND_HALF_UP")
        if tier is not None:
            rule.update(tier=tier, month_revenue=month_revenue)
    if cap_at_base and amount > base:
        rule["capped_at_base"] = True
        amount = base

    try:
        with transaction.atomic():
            commission = Commission.objects.create(
                affiliate=affiliate,
                referral=referral,
                **source.lookup,
                base_amount=base,
                amount=amount,
                currency=currency,
                rule=rule,
                status=Commission.Status.HELD,
                paid_at_invoice=paid_at,
                available_at=paid_at + timedelta(days=program.hold_days),
            )
    except IntegrityError:
        return Commission.objects.get(**source.lookup, affiliate=affiliate)

    commission.flags = commission_flags(commission=commission)
    if commission.flags:
        commission.save(update_fields=["flags"])
    if amount > 0:
        ledger_post(
            idempotency_key=commission_key(commission),
            source=COMMISSION_SOURCE,
            lines=[
                Line.debit(system_account(funded_by), amount, currency),
                Line.credit(
                    account_for_payee(payee_type=PAYEE_TYPE, payee_id=affiliate.pk),
                    amount,
                    currency,
                ),
            ],
            memo=f"Commission on {source.label} (referral {referral.pk})",
            posted_at=paid_at,
        )
    return commission


def commissions_accrue_for_referral(*, referral: Referral) -> list[Commission]:
    """Accrue on the customer's invoices already paid (dj-stripe mirror), oldest first.

    For a referral attributed after its first ``invoice.paid`` was processed (Stripe does not
    order ``customer.subscription.created`` before ``invoice.paid``); idempotent like
    ``commission_accrue``. Invoices paid more than 5 minutes before ``referred_at`` are not the
    affiliate's (the margin covers a subscribe call whose first invoice is paid moments before
    the referral it carried is recorded).
    """
    rows = djm.Invoice.objects.filter(customer__id=referral.stripe_customer_id).values_list(
        "stripe_data", flat=True
    )
    paid = [dict(data) for data in rows if data and data.get("status") == "paid"]
    paid.sort(key=lambda d: ((d.get("status_transitions") or {}).get("paid_at") or 0, d["id"]))
    made = []
    for data in paid:
        paid_at = invoice_paid_at(data) or referral.referred_at
        if paid_at < referral.referred_at - REFERRAL_MARGIN:
            continue
        commission = commission_accrue(invoice=data, occurred_at=paid_at)
        if commission is not None:
            made.append(commission)
    return made


# --- approval and review ------------------------------------------------------------------
def _approvable(commission: Commission) -> bool:
    return not commission.flags or commission.reviewed_at is not None


@transaction.atomic
def commissions_approve_due(*, now: datetime | None = None) -> int:
    """Approve HELD commissions whose hold ended, unless flagged and not reviewed yet.

    Returns how many were approved. Flagged commissions wait for ``commission_review``.
    """
    now = now or timezone.now()
    due = list(
        Commission.objects.select_for_update()
        .filter(status=Commission.Status.HELD, available_at__lte=now)
        .order_by("pk")
    )
    approved = [c for c in due if _approvable(c) and c.amount > c.reversed_amount]
    for commission in approved:
        commission.status = Commission.Status.APPROVED
        commission.approved_at = now
    Commission.objects.bulk_update(approved, ["status", "approved_at"])
    return len(approved)


class CommissionReviewError(ValueError):
    """Only HELD commissions can be reviewed."""


@transaction.atomic
def commission_review(
    *, commission: Commission, actor: User | None, approve: bool, note: str = ""
) -> Commission:
    """Staff decision on a (usually flagged) HELD commission.

    Approving records the review, which clears the fraud block: the commission is APPROVED now
    if its hold has ended, else by ``commissions_approve_due`` when it ends. Rejecting reverses
    what is left of its posting and makes it REVERSED. Raises CommissionReviewError unless HELD.
    """
    commission = Commission.objects.select_for_update().get(pk=commission.pk)
    if commission.status != Commission.Status.HELD:
        raise CommissionReviewError(f"commission {commission.pk} is {commission.status}")
    now = timezone.now()
    commission.reviewed_at = now
    commission.reviewed_by = actor
    if approve:
        if commission.available_at <= now:
            commission.status = Commission.Status.APPROVED
            commission.approved_at = now
    else:
        left = commission.amount - commission.reversed_amount
        if left > 0:
            commission_reverse(
                commission,
                amount=left,
                key=f"affiliate-commission:{commission.pk}:rejected",
                memo=f"Commission {commission.pk} rejected on review: {note}"[:500],
                at=now,
            )
        commission.status = Commission.Status.REVERSED
        commission.reversed_at = now
    commission.save()
    return commission


def commission_postings(commission: Commission) -> list[Transaction]:
    """The commission's accrual posting, then its reinstatements after won disputes."""
    accrual = Transaction.objects.get(
        source=COMMISSION_SOURCE, idempotency_key=commission_key(commission)
    )
    reinstated = Transaction.objects.filter(
        source=REINSTATED_SOURCE,
        idempotency_key__startswith="dispute.won:",
        idempotency_key__endswith=f":commission:{commission.pk}",
    ).order_by("pk")
    return [accrual, *reinstated]


def commission_reverse(
    commission: Commission, *, amount: int, key: str, memo: str, at: datetime
) -> Transaction:
    """Reverse ``amount`` of the commission's postings, the accrual first; returns the first
    part (key ``key``; a part taken from a reinstatement is ``<key>:<its key>``). Raises
    InvalidReversalError when less than ``amount`` is left."""
    first, rest = ledger_reverse_in_order(
        transactions=commission_postings(commission),
        amount=amount,
        idempotency_key=key,
        source=CLAWBACK_SOURCE,
        memo=memo,
        posted_at=at,
    )
    if first is None or rest:
        raise InvalidReversalError(f"commission {commission.pk}: {rest} of {amount} not left")
    commission.reversed_amount += amount
    return first


# --- payout engine hooks (ledger.payouts) -------------------------------------------------
def affiliate_withheld(*, payee_ids: list[int], as_of: datetime) -> dict[tuple[int, str], int]:
    """Money in affiliates' payables that is not payable at ``as_of``, per (id, currency).

    The engine reads payables *now*; this is the net (amount - reversed) of every commission
    not approved by ``as_of``: HELD ones (flagged or not, accrued before or after ``as_of``)
    and those approved later. PAID ones are out of the payable already; reversed money too.
    """
    rows = (
        Commission.objects.filter(affiliate_id__in=payee_ids)
        .filter(
            Q(status=Commission.Status.HELD)
            | Q(status=Commission.Status.APPROVED, approved_at__gt=as_of)
        )
        .values("affiliate_id", "currency")
        .annotate(total=Sum("amount"), reversed=Sum("reversed_amount"))
        .order_by()
    )
    return {
        (row["affiliate_id"], row["currency"]): int(row["total"]) - int(row["reversed"])
        for row in rows
    }


def affiliate_minimum(payee_id: int) -> int:
    program_minimum = (
        Affiliate.objects.filter(pk=payee_id)
        .values_list("program__minimum_payout", flat=True)
        .first()
    )
    return int(program_minimum or 0)


def affiliate_payout_paid(*, payout: Payout, as_of: datetime) -> int:
    """Link the commissions a PAID payout settled (APPROVED by ``as_of``, in its currency)
    and email the affiliate a remittance notice (queued: a mail server that is down never
    fails the payout)."""
    settled = Commission.objects.filter(
        affiliate_id=payout.payee_id,
        currency=payout.currency,
        status=Commission.Status.APPROVED,
        approved_at__lte=as_of,
        payout__isnull=True,
    ).update(status=Commission.Status.PAID, payout=payout)
    affiliate = Affiliate.objects.select_related("user", "program").get(pk=payout.payee_id)
    amount = format_money(payout.amount, payout.currency, with_code=True)
    email_queue(
        to=[affiliate.user.email],
        purpose="affiliate.payout_paid",
        subject=f"Your {affiliate.program.name} payout of {amount}",
        body=(
            f"We have sent you {amount} ({payout.get_method_display()}) for "
            f"{settled} commission(s). Payout reference: {payout.pk}."
        ),
    )
    return settled


def end_of_day(day: date) -> datetime:
    return datetime.combine(day, time.max, tzinfo=UTC)
