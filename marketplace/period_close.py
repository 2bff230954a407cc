"""API billing writes: closing a customer's usage period and billing it through Stripe.

A period is a calendar month (UTC). It closes once its end plus the grace period
(``USAGE_CLOSE_GRACE``, default one hour) has passed: late events inside the grace still count,
and from the close on, new events stamped inside the period are refused (the ingestion asks
``usage_periods_closed``), so nothing is stored that is never billed.

``usage_period_close`` runs the steps of a ``UsagePeriodClose`` (the period's own close: one
row per customer and period, the unique constraint decides who closes it; the currency
splits below hang off it) and resumes wherever an earlier attempt stopped:

1. **Rating** (one transaction, the row locked): every meter the customer's plan prices is
   rated from the hourly rollups (``selectors.usage_charges_for_period``) and written as
   ``UsageChargeLine`` rows with the total; from here the amounts are fixed. Zero → the close
   ends ``NOTHING_TO_BILL``. One invoice holds one currency, so when the charges billed
   (non-zero) come in several, the close keeps one currency's lines (the plan's when API
   usage is billed, else the first in alphabetical order) and, in the same transaction,
   a **split** close is created per other currency (``split_from`` the close; unique per
   currency) holding that currency's lines and total, already ``INVOICING``. Lines of a
   currency with nothing billed stay on the close (never invoiced, as any zero line).
2. **Invoicing** in Stripe: a draft invoice for the customer (``pending_invoice_items_behavior
   = exclude``, so nothing else is swept in; ``metadata.revenue_account = revenue.api_usage``
   so the invoice postings book it as API usage revenue), one invoice item per line with an
   amount, then finalize with automatic collection and one payment attempt. Every write has an
   idempotency key (the item's: customer, meter, period and attempt, and a split's currency;
   see ``_key``); before creating, the customer's invoices and the invoice's items are
   listed (an invoice is the one whose ``metadata.usage_period_close`` is the close's pk),
   so what an attempt that died before saving an id created is found rather than created
   again, however long ago that was (Stripe forgets idempotency keys after 24 hours). A
   period's closes (its own and its splits) are invoiced one after the other, each with its
   own Stripe invoice (Stripe bills a customer in several currencies: ``currency`` on the
   invoice and its items), attempts and backoff: one failing does not hold the others.
3. **Paid**: the invoice's ``invoice.paid`` books the revenue (``subscriptions`` invoice
   postings, once per invoice) and marks the close whose invoice it is ``PAID``; a refund or
   dispute of its charge reverses that posting like any invoice's.

A failure (Stripe unreachable or refusing) keeps the step, counts the attempt, records the
error and schedules the next attempt with backoff, on the close it happened to; the hourly
sweep resumes every close (own or split) whose next attempt is due, and the staff console's
"Retry now" resumes the closes chosen at once (a period's own close with its splits).

**Charge sources** (``charge_source_register``): other streams put their own period charges
on the same invoice, so a customer gets one invoice a month (one per currency billed). A
source names the customers it has charges for in a period and rates each one's charges
(through ``marketplace.rating``: there is one rating engine); the rating step stores them as
``UsageChargeLine`` rows with ``source`` and ``reference`` beside the meters' lines, and
from there they are invoiced, retried and found again exactly like them. The content app's
usage royalties are one (``content.royalties``). When the invoice is paid,
``invoice_source_lines`` gives a source its lines with their share of the revenue booked for
the invoice, for the source to book onwards (creators' shares): per invoice, so a split's
lines are booked when the split's invoice is paid, and ``_revenue_account`` is chosen per
close (a split holding only a source's lines books to the source's revenue account).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from ledger.chart import SystemAccount
from marketplace import selectors
from marketplace.models import UsageChargeLine, UsagePeriodClose, UsageRollup, month_bounds
from revenue_site.money import allocate
from revenue_site.stripe_errors import BillingError, stripe_errors
from revenue_site.stripe_payloads import invoice_tax, stripe_id
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.services.billing import billing_customer_ensure

logger = logging.getLogger(__name__)

Status = UsagePeriodClose.Status
RETRY_BASE = timedelta(minutes=5)
RETRY_CAP = timedelta(hours=6)
# Periods this far back are still closed by the sweep (a scheduler down for a while).
LOOKBACK_PERIODS = 3


def grace() -> timedelta:
    return timedelta(seconds=settings.USAGE_CLOSE_GRACE_SECONDS)


class PeriodNotOver(ValueError):
    """The period (plus the grace) has not ended yet."""


# --- charge sources ------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceCharge:
    """One charge a source puts on a customer's period invoice: ``reference`` is unique
    within the source and the period (it keys the invoice item), ``amount`` in ``currency``'s
    minor units, rated by ``marketplace.rating``."""

    reference: str
    description: str
    quantity: Decimal
    amount: int
    currency: str


class ChargeSource(Protocol):
    """What the period close asks of another stream's charges (a registry entry)."""

    revenue_account: SystemAccount

    def customers(self, *, start: datetime, end: datetime) -> Iterable[int]:
        """Ids of the customers with charges in [start, end)."""
        ...

    def charges(self, *, customer: User, start: datetime, end: datetime) -> list[SourceCharge]:
        """The customer's charges in [start, end) (zero amounts allowed: not invoiced)."""
        ...


_CHARGE_SOURCES: dict[str, ChargeSource] = {}


def charge_source_register(name: str, source: ChargeSource) -> None:
    """Put ``source``'s charges on the period invoices (an app's ``ready()``; idempotent)."""
    if not name or len(name) > 32:
        raise ValueError("a charge source's name is 1 to 32 characters")
    _CHARGE_SOURCES[name] = source


# --- which periods -------------------------------------------------------------------------


def usage_periods_closed(*, customer_id: int, period_starts: Iterable[datetime]) -> set[datetime]:
    """Of these period starts, those whose close has rated the usage (no longer accepting
    events). Locks their rows (FOR NO KEY UPDATE) until the caller's transaction ends, so a
    close cannot rate the period while the caller is storing events into it (the rating locks
    the row FOR UPDATE). Rows exist only from the period's end plus the grace on, so batches of
    current usage lock nothing."""
    starts = set(period_starts)
    if not starts:
        return set()
    rows = (
        UsagePeriodClose.objects.select_for_update(no_key=True)
        .filter(customer_id=customer_id, period_start__in=starts, split_from__isnull=True)
        .order_by("pk")
        .values_list("period_start", "status")
    )
    return {start for start, status in rows if status != Status.RATING}


def periods_due(*, now: datetime) -> list[tuple[int, datetime]]:
    """(customer id, period start) of every period past its end plus the grace, within the
    look-back, in which the customer has usage and that is not closed yet, or one of whose
    closes (the period's own or a currency split off it) is unfinished and due for its next
    attempt."""
    current_start, _ = month_bounds(now - grace())
    starts: list[datetime] = []
    start = current_start
    for _ in range(LOOKBACK_PERIODS):
        start, _ = month_bounds(start - timedelta(days=1))
        starts.append(start)
    due: set[tuple[int, datetime]] = set()
    for start in starts:
        _, end = month_bounds(start)
        users = (
            UsageRollup.objects.filter(hour__gte=start, hour__lt=end)
            .values_list("customer_id", flat=True)
            .distinct()
        )
        due.update((customer_id, start) for customer_id in users)
        for source in _CHARGE_SOURCES.values():
            due.update(
                (customer_id, start) for customer_id in source.customers(start=start, end=end)
            )
    closes = UsagePeriodClose.objects.filter(period_start__in=starts)
    due -= set(closes.filter(split_from__isnull=True).values_list("customer_id", "period_start"))
    due |= set(
        closes.filter(status__in=[Status.RATING, Status.INVOICING])
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("customer_id", "period_start")
    )
    return sorted(due, key=lambda pair: (pair[1], pair[0]))


# --- the close -----------------------------------------------------------------------------


def _claim(*, customer: User, period_start: datetime) -> UsagePeriodClose:
    _, period_end = month_bounds(period_start)
    try:
        with transaction.atomic():
            close, _ = UsagePeriodClose.objects.get_or_create(
                customer=customer,
                period_start=period_start,
                split_from=None,
                defaults={"period_end": period_end},
            )
    except IntegrityError:  # a concurrent claim won the unique constraint
        close = UsagePeriodClose.objects.get(
            customer=customer, period_start=period_start, split_from=None
        )
    return close


def _description(line: selectors.UsageCharge) -> str:
    meter = line.meter
    quantity = f"{line.quantity.normalize():f}"
    text = f"{meter.name}: {quantity} {meter.unit}"
    if line.rating.free_quantity:
        text += f" ({line.rating.free_quantity.normalize():f} free)"
    period = f"{line.period_start:%Y-%m}"
    return f"{text}, {period}"[:500]


@transaction.atomic
def _rate(*, close_id: int) -> UsagePeriodClose:
    """Rate the period of the claimed close ``close_id`` and fix its lines; see the module
    docstring for how charges in several currencies are split over closes."""
    close = UsagePeriodClose.objects.select_for_update().select_related("customer").get(pk=close_id)
    if close.status != Status.RATING:
        return close  # rated by a concurrent attempt
    plan = selectors.api_plan_for_customer(customer=close.customer)
    charges = (
        []
        if plan is None
        else selectors.usage_charges_for_period(
            customer=close.customer, plan=plan, start=close.period_start, end=close.period_end
        )
    )
    sourced = [
        (name, charge)
        for name, source in sorted(_CHARGE_SOURCES.items())
        for charge in source.charges(
            customer=close.customer, start=close.period_start, end=close.period_end
        )
    ]
    lines: list[tuple[str, UsageChargeLine]] = [
        *(
            (
                plan.currency,
                UsageChargeLine(
                    meter=charge.meter,
                    quantity=charge.rating.quantity,
                    free_quantity=charge.rating.free_quantity,
                    billable_quantity=charge.rating.billable_quantity,
                    amount=charge.rating.amount,
                    description=_description(charge),
                ),
            )
            for charge in charges
            if plan is not None
        ),
        *(
            (
                charge.currency,
                UsageChargeLine(
                    source=name,
                    reference=charge.reference,
                    quantity=charge.quantity,
                    free_quantity=0,
                    billable_quantity=charge.quantity,
                    amount=charge.amount,
                    description=charge.description[:500],
                ),
            )
            for name, charge in sourced
        ),
    ]
    billed = sorted({currency for currency, line in lines if line.amount})
    if plan is not None and any(charge.rating.amount for charge in charges):
        close.currency = plan.currency  # the API usage stays on the period's own invoice
    elif billed:
        close.currency = billed[0]
    else:
        close.currency = next((currency for currency, _ in lines), "")
    close.plan = plan
    # One close per billed currency: this one, and a split per other currency. Lines of a
    # currency with nothing billed (all zero: never invoiced) stay on this one.
    splits = {
        currency: UsagePeriodClose.objects.create(
            customer=close.customer,
            period_start=close.period_start,
            period_end=close.period_end,
            split_from=close,
            currency=currency,
            amount=sum(line.amount for c, line in lines if c == currency),
            status=Status.INVOICING,
        )
        for currency in billed
        if currency != close.currency
    }
    for currency, line in lines:
        line.period_close = splits.get(currency, close)
    UsageChargeLine.objects.bulk_create([line for _, line in lines])
    close.amount = sum(line.amount for _, line in lines if line.period_close is close)
    close.status = Status.INVOICING if close.amount > 0 else Status.NOTHING_TO_BILL
    close.last_error, close.next_attempt_at = "", None
    close.save()
    return close


def _key(close: UsagePeriodClose, step: str) -> str:
    """The idempotency key of a Stripe write: the customer, the period (and a split's
    currency, so the invoices of one period never share a key) and the step (an invoice
    item's names its meter), and the attempt. Stripe replays a failed request's answer (a
    500 included) to a retry with the same key, so a new attempt takes a new key; what an
    earlier attempt may have created is found by listing first (``_invoice_find``,
    ``_items_add``), never created twice."""
    split = f"{close.currency}-" if close.split_from_id else ""
    period = f"{close.period_start:%Y-%m}"
    return f"usage-{split}{step}-{close.customer_id}-{period}-a{close.attempts}"


def _revenue_account(close: UsagePeriodClose) -> SystemAccount:
    """The account the invoice's revenue is booked to: a source's own when only that source
    has charges on it, else API usage (sources move their lines' share on when it is paid)."""
    kinds = set(close.lines.filter(amount__gt=0).values_list("source", flat=True))
    if len(kinds) == 1 and (name := kinds.pop()) in _CHARGE_SOURCES:
        return _CHARGE_SOURCES[name].revenue_account
    return SystemAccount.REVENUE_API_USAGE


def _invoice_find(*, close: UsagePeriodClose, customer: str, api_key: str) -> Any:
    """The invoice an earlier attempt created but did not record (it died first)."""
    since = int(close.created_at.timestamp()) - 60
    for invoice in stripe.Invoice.list(
        customer=customer, created={"gte": since}, limit=100, api_key=api_key
    ).auto_paging_iter():
        metadata = invoice["metadata"].to_dict() if invoice["metadata"] else {}
        if metadata.get("usage_period_close") == str(close.pk):
            return invoice
    return None


@stripe_errors()
def _invoice(*, close: UsagePeriodClose) -> UsagePeriodClose:
    """The Stripe steps; each saved as soon as Stripe answers, so a retry skips what is done."""
    api_key = stripe_api_key()
    invoice: Any = None
    billing_customer, mirrored = billing_customer_ensure(user=close.customer)
    stripe_customer = billing_customer.stripe_customer_id
    period = f"{close.period_start:%Y-%m}"
    if not close.stripe_invoice_id:
        invoice = _invoice_find(close=close, customer=stripe_customer, api_key=api_key)
    if not close.stripe_invoice_id and invoice is None:
        payment_method = selectors.usage_payment_method(
            customer=close.customer, stripe_customer=mirrored.stripe_data
        )
        params: dict[str, Any] = {
            "customer": stripe_customer,
            "currency": close.currency,
            "collection_method": "charge_automatically",
            "auto_advance": False,  # we finalize once every item is on it
            "pending_invoice_items_behavior": "exclude",
            "description": f"API usage, {period}"
            if not close.lines.exclude(source="").exists()
            else f"Usage, {period}",
            "metadata": {
                "usage_period_close": str(close.pk),
                "usage_period": period,
                "revenue_account": _revenue_account(close).value,
            },
        }
        if payment_method:
            # Stripe's own fallback is the customer's invoice default; a subscriber's card is
            # on their subscription, so name it (Stripe's automatic retries use it too).
            params["default_payment_method"] = payment_method
        invoice = stripe.Invoice.create(
            **params, api_key=api_key, idempotency_key=_key(close, "invoice")
        )
    elif invoice is None:
        invoice = stripe.Invoice.retrieve(close.stripe_invoice_id, api_key=api_key)
    if close.stripe_invoice_id != invoice.id:
        close.stripe_invoice_id = invoice.id
        close.save(update_fields=["stripe_invoice_id", "updated_at"])
    if invoice.status == "draft":
        _items_add(close=close, invoice_id=invoice.id, customer=stripe_customer, api_key=api_key)
        invoice = stripe.Invoice.finalize_invoice(
            invoice.id,
            auto_advance=True,  # Stripe collects (and retries a failed payment) from here
            api_key=api_key,
            idempotency_key=_key(close, "finalize"),
        )
    close.status = Status.PAID if invoice.status == "paid" else Status.FINALIZED
    close.last_error, close.next_attempt_at = "", None
    close.save(update_fields=["status", "last_error", "next_attempt_at", "updated_at"])
    if invoice.status == "open":
        _pay(close=close, invoice_id=invoice.id, api_key=api_key)
    return close


def _items_add(*, close: UsagePeriodClose, invoice_id: str, customer: str, api_key: str) -> None:
    lines = list(
        close.lines.select_related("meter")
        .filter(amount__gt=0)
        .order_by("source", "meter__code", "reference")
    )
    on_invoice = {
        str(
            item["metadata"].to_dict().get("usage_charge_line") if item["metadata"] else None
        ): item.id
        for item in stripe.InvoiceItem.list(
            invoice=invoice_id, limit=100, api_key=api_key
        ).auto_paging_iter()
    }
    for line in lines:
        if line.stripe_invoice_item_id:
            continue
        item_id = on_invoice.get(str(line.pk))
        if item_id is None:
            if line.meter is not None:
                what = {"meter": line.meter.code}
                step = f"item-{line.meter.code}"
            else:
                what = {"charge_source": line.source, "reference": line.reference}
                step = f"item-{line.source}-{line.reference}"
            item_id = stripe.InvoiceItem.create(
                customer=customer,
                invoice=invoice_id,
                amount=line.amount,
                currency=close.currency,
                description=line.description,
                period={
                    "start": int(close.period_start.timestamp()),
                    "end": int(close.period_end.timestamp()),
                },
                metadata={"usage_charge_line": str(line.pk), **what},
                api_key=api_key,
                idempotency_key=_key(close, step),
            ).id
        line.stripe_invoice_item_id = item_id
        line.save(update_fields=["stripe_invoice_item_id"])


def _pay(*, close: UsagePeriodClose, invoice_id: str, api_key: str) -> None:
    """One payment attempt now; a decline is not the close's failure (the invoice is open,
    Stripe's automatic collection and dunning take it from here)."""
    try:
        stripe.Invoice.pay(
            invoice_id,
            api_key=api_key,
            idempotency_key=_key(close, "pay"),
        )
    except stripe.CardError as exc:
        logger.info("usage invoice %s: payment declined (%s)", invoice_id, exc.code)
    except stripe.InvalidRequestError as exc:  # e.g. no payment method on file yet
        logger.info("usage invoice %s: not paid now: %s", invoice_id, exc.user_message or exc)


def _failed(close: UsagePeriodClose, error: Exception, *, now: datetime) -> UsagePeriodClose:
    attempts = close.attempts + 1
    delay = min(RETRY_BASE * 2 ** (attempts - 1), RETRY_CAP)
    UsagePeriodClose.objects.filter(pk=close.pk).update(
        attempts=attempts,
        last_error=str(error)[:2000],
        next_attempt_at=now + delay,
        updated_at=now,
    )
    close.refresh_from_db()
    logger.warning("usage period close %s failed (attempt %s): %s", close.pk, attempts, error)
    return close


def usage_period_close(
    *, customer: User, period_start: datetime, now: datetime | None = None
) -> UsagePeriodClose:
    """Close (or resume closing) one customer's period: its own close and every currency
    split off it (each invoiced on its own); returns the period's own close in the state it
    reached (``close.splits`` are the others). A Stripe failure is recorded on the close it
    happened to (attempts, last error, next attempt), not raised. Raises PeriodNotOver before
    the period's end plus the grace."""
    now = now or timezone.now()
    start, end = month_bounds(period_start)
    if now < end + grace():
        raise PeriodNotOver(f"The period {start:%Y-%m} closes at {end + grace():%Y-%m-%d %H:%M}.")
    return _resume_period(_claim(customer=customer, period_start=start), now=now)[0]


def _resume(close: UsagePeriodClose, *, now: datetime) -> UsagePeriodClose:
    if close.status == Status.RATING:
        close = _rate(close_id=close.pk)
    if close.status == Status.INVOICING:
        try:
            close = _invoice(close=close)
        except BillingError as exc:
            return _failed(close, exc, now=now)
    return close


def _due(close: UsagePeriodClose, now: datetime) -> bool:
    return close.next_attempt_at is None or close.next_attempt_at <= now


def _resume_period(
    close: UsagePeriodClose, *, now: datetime, only_due: bool = False
) -> list[UsagePeriodClose]:
    """Resume the period's own close, then each unfinished currency split off it (the
    rating may just have made them); a failure of one does not stop the others. With
    ``only_due`` (the sweep) a close waiting for its next attempt is left to wait. Returns
    the period's closes, its own first."""
    if not only_due or _due(close, now):
        close = _resume(close, now=now)
    closes = [close]
    splits = close.splits.filter(status=Status.INVOICING).select_related("customer")
    for split in splits.order_by("pk"):
        closes.append(_resume(split, now=now) if not only_due or _due(split, now) else split)
    return closes


@dataclass(frozen=True)
class SweepResult:
    """Periods closed (every invoice finalized or paid), still to retry (a close of theirs
    unfinished) and with nothing to bill."""

    closed: int
    failed: int
    nothing_to_bill: int


def usage_periods_close_due(*, now: datetime | None = None) -> SweepResult:
    """Close every due period and resume every close whose next attempt is due (the hourly
    beat task); one failing customer, or one failing invoice of a period, does not stop the
    others."""
    now = now or timezone.now()
    closed = failed = nothing = 0
    due = periods_due(now=now)
    users = {user.pk: user for user in User.objects.filter(pk__in={c for c, _ in due})}
    for customer_id, start in due:
        closes = _resume_period(
            _claim(customer=users[customer_id], period_start=start), now=now, only_due=True
        )
        if any(close.status in (Status.RATING, Status.INVOICING) for close in closes):
            failed += 1
        elif closes[0].status == Status.NOTHING_TO_BILL:
            nothing += 1
        else:
            closed += 1
    return SweepResult(closed=closed, failed=failed, nothing_to_bill=nothing)


def usage_period_close_retry(
    *, close: UsagePeriodClose, now: datetime | None = None
) -> UsagePeriodClose:
    """Staff's "Retry now": resume a close at once, whatever its next attempt time (a close
    exists only once its period was over). A period's own close resumes the currency
    splits off it too (its rating may make them); a split resumes alone."""
    now = now or timezone.now()
    close.refresh_from_db()  # the row as it is now (e.g. resumed with its period's close)
    if close.split_from_id is not None:
        return _resume(close, now=now)
    return _resume_period(close, now=now)[0]


def usage_invoice_paid(*, invoice: dict[str, Any]) -> int:
    """Mark the close whose Stripe invoice this is PAID (the revenue is booked by the invoice
    postings on the same event). Returns how many closes changed (0 for other invoices)."""
    invoice_id = invoice.get("id")
    if not invoice_id:
        return 0
    return UsagePeriodClose.objects.filter(
        stripe_invoice_id=invoice_id, status__in=[Status.INVOICING, Status.FINALIZED]
    ).update(status=Status.PAID, updated_at=timezone.now())


@dataclass(frozen=True)
class PaidLine:
    """A charge line of a paid period invoice and its share (minor units) of the revenue
    booked for the invoice: what was paid less tax, over the invoice's lines by amount
    (largest remainder), so the shares add up to that revenue exactly."""

    line: UsageChargeLine
    revenue: int


def invoice_source_lines(*, invoice: Mapping[str, Any], source: str) -> list[PaidLine]:
    """The lines ``source`` put on this paid period invoice, with their revenue shares; []
    for any other invoice."""
    invoice_id = stripe_id(invoice.get("id"))
    close = (
        UsagePeriodClose.objects.filter(stripe_invoice_id=invoice_id).first()
        if invoice_id
        else None
    )
    if close is None:
        return []
    lines = list(close.lines.filter(amount__gt=0).order_by("pk"))
    if not any(line.source == source for line in lines):
        return []
    paid = int(invoice.get("amount_paid") or 0)
    revenue = paid - min(invoice_tax(invoice), paid)
    amounts = [line.amount for line in lines]
    if revenue == sum(amounts):
        shares = amounts
    elif revenue > 0:
        shares = allocate(revenue, amounts)
    else:
        shares = [0] * len(lines)
    return [
        PaidLine(line=line, revenue=share)
        for line, share in zip(lines, shares, strict=True)
        if line.source == source
    ]


__all__ = [
    "ChargeSource",
    "PaidLine",
    "PeriodNotOver",
    "SourceCharge",
    "SweepResult",
    "charge_source_register",
    "grace",
    "invoice_source_lines",
    "periods_due",
    "usage_invoice_paid",
    "usage_period_close",
    "usage_period_close_retry",
    "usage_periods_close_due",
    "usage_periods_closed",
]
