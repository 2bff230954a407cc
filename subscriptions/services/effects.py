"""What Stripe events do to our side (issue 3 §4), and the staff refund action.

Each service takes the Stripe object as the event carries it (a dict, already synced into
dj-stripe's mirror by the time a receiver calls us) and the event's ``created`` time, and is
idempotent on the Stripe ids involved, so a redelivered or reprocessed event has one effect:

- ledger postings go through ``ledger_post`` / ``ledger_reverse`` with keys derived from Stripe
  ids (``stripe:invoice.paid:<in_…>``, ``stripe:refund:<re_…>``, ``stripe:dispute:<dp_…>``,
  ``stripe:dispute.won:<dp_…>``);
- subscription state is guarded by the event time (older events never overwrite newer state);
- MRR movements are unique per (event, subscription); dunning cases per invoice.

Accounting (minor units, the invoice's currency):

- invoice paid: Dr ``asset.stripe_clearing`` ``amount_paid`` / Cr ``revenue.subscriptions``
  ``amount_paid - tax`` / Cr ``liability.sales_tax_payable`` ``tax`` (the tax line only when
  there is tax). Tax is what the invoice reports (``total_taxes``; inclusive and exclusive
  alike, as both are inside ``amount_paid``), capped at ``amount_paid``. Invoices booked
  before tax went to the ledger keep their two-line posting.
- refund / dispute: the charge's invoice is found through its payment intent's invoice
  payment (``subscriptions.services.invoice_payments``; charges name no invoice at our API
  version); a partial reversal of that invoice posting (``ledger_reverse(amount=…)``),
  which spreads the amount over the posting's lines pro rata to what each has left (largest
  remainder), so revenue and tax are reversed in proportion and the parts add up to the
  refunded amount exactly.
- dispute won (``charge.dispute.funds_reinstated``, or ``charge.dispute.closed`` with status
  ``won``, whichever comes first): a posting with the dispute reversal's lines negated (Dr
  clearing / Cr revenue / Cr tax payable for the disputed amount), so every balance is back to
  where it was before the dispute. A later refund of that charge reverses what is left of the
  invoice posting first, then of this one.
- dispute lost (``charge.dispute.closed``, ``lost``): nothing more here; the reversal booked
  when the dispute opened stands.
- Stripe's fees (processing fees on charges, dispute fees and their return when won) are
  booked by ``subscriptions.services.stripe_fees`` from the balance transactions, not here
  (Dr ``expense.stripe_fees`` / ``expense.disputes``, Cr clearing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe
from django.core.cache import cache
from django.db import transaction
from djstripe import models as djm
from djstripe.settings import djstripe_settings

from analytics.mrr import subscription_mrr
from analytics.services import mrr_movement_record
from ledger.chart import SystemAccount
from ledger.models import Transaction
from ledger.services import Line, ledger_post, ledger_reverse_in_order, system_account
from revenue_site.money import apply_rate
from revenue_site.stripe_ids import dispute_is_inquiry, stripe_api_key, stripe_id
from subscriptions.models import DunningCase, SubscriptionState
from subscriptions.services.invoice_payments import (
    invoice_id_for_charge,
    invoice_id_for_payment_intent,
    invoice_payment_intent_id,
)
from subscriptions.stripe_expand import subscription_discounts_expanded

logger = logging.getLogger(__name__)

INVOICE_PAID_SOURCE = "subscriptions.invoice_paid"
REFUND_SOURCE = "subscriptions.refund"
DISPUTE_SOURCE = "subscriptions.dispute"
DISPUTE_WON_SOURCE = "subscriptions.dispute_won"


class EffectNotReadyError(RuntimeError):
    """An event depends on one not processed yet (a refund before its invoice was paid).

    Raised so the event is retried later; nothing was written.
    """


def invoice_paid_key(invoice_id: str) -> str:
    return f"stripe:invoice.paid:{invoice_id}"


def dispute_key(dispute_id: str) -> str:
    return f"stripe:dispute:{dispute_id}"


def dispute_won_key(dispute_id: str) -> str:
    return f"stripe:dispute.won:{dispute_id}"


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _invoice_subscription_id(invoice: Mapping[str, Any]) -> str:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return stripe_id(details.get("subscription"))


def _invoice_tax(invoice: Mapping[str, Any]) -> int:
    return sum(int(row.get("amount") or 0) for row in invoice.get("total_taxes") or [])


# --- invoice paid -------------------------------------------------------------------------
@transaction.atomic
def invoice_paid_record(*, invoice: Mapping[str, Any], occurred_at: datetime) -> Transaction | None:
    """Book a paid invoice's revenue and tax and mark its dunning case recovered.

    Posts Dr stripe clearing ``amount_paid`` / Cr subscription revenue ``amount_paid - tax`` /
    Cr sales tax payable ``tax``, once per invoice (key ``stripe:invoice.paid:<invoice id>``);
    returns the posting, or None when nothing was paid (trial and 100 %-off invoices). An open
    dunning case for the invoice becomes RECOVERED at ``occurred_at``.
    """
    invoice_id = stripe_id(invoice.get("id"))
    DunningCase.objects.filter(stripe_invoice_id=invoice_id, status=DunningCase.Status.OPEN).update(
        status=DunningCase.Status.RECOVERED, resolved_at=occurred_at
    )

    paid = int(invoice.get("amount_paid") or 0)
    if paid <= 0:
        return None
    # Not the deduplication (ledger_post's unique key is): an invoice booked before tax went
    # to the ledger has other lines, which ledger_post would refuse as a conflicting replay.
    booked = Transaction.objects.filter(
        source=INVOICE_PAID_SOURCE, idempotency_key=invoice_paid_key(invoice_id)
    ).first()
    if booked is not None:
        return booked
    tax = min(_invoice_tax(invoice), paid)
    currency = str(invoice["currency"]).lower()
    lines = [Line.debit(system_account(SystemAccount.STRIPE_CLEARING), paid, currency)]
    if paid > tax:
        revenue = system_account(SystemAccount.REVENUE_SUBSCRIPTIONS)
        lines.append(Line.credit(revenue, paid - tax, currency))
    if tax > 0:
        lines.append(Line.credit(system_account(SystemAccount.SALES_TAX_PAYABLE), tax, currency))
    return ledger_post(
        idempotency_key=invoice_paid_key(invoice_id),
        source=INVOICE_PAID_SOURCE,
        lines=lines,
        memo=f"Invoice {invoice_id} paid by {stripe_id(invoice.get('customer'))}",
        posted_at=occurred_at,
    )


def _invoice_posting(invoice_id: str, *, occurred_at: datetime) -> Transaction:
    """The invoice's revenue posting; booked from the mirror if its event is still on the way.

    An invoice not mirrored yet is fetched and mirrored first (dj-stripe used to do that when
    it synced a charge naming its invoice; charges name none at our API version).
    """
    posting = Transaction.objects.filter(
        source=INVOICE_PAID_SOURCE, idempotency_key=invoice_paid_key(invoice_id)
    ).first()
    if posting is not None:
        return posting
    mirrored = djm.Invoice.objects.filter(id=invoice_id).values_list("stripe_data", flat=True)
    data = mirrored.first()
    if data is None:
        api_key = djstripe_settings.get_default_api_key(None)
        invoice = djm.Invoice.sync_from_stripe_data(
            stripe.Invoice.retrieve(invoice_id, api_key=api_key), api_key=api_key
        )
        data = invoice.stripe_data
    if data and data.get("status") == "paid":
        paid_at = _timestamp((data.get("status_transitions") or {}).get("paid_at"))
        posting = invoice_paid_record(invoice=data, occurred_at=paid_at or occurred_at)
        if posting is not None:
            return posting
    raise EffectNotReadyError(f"invoice {invoice_id} has no revenue posting yet")


def _reinstatements(posting: Transaction) -> list[Transaction]:
    """Postings that booked back disputes on ``posting`` which the merchant won, oldest first."""
    disputes = posting.reversals.filter(source=DISPUTE_SOURCE).values_list(
        "idempotency_key", flat=True
    )
    keys = [dispute_won_key(key.removeprefix(dispute_key(""))) for key in disputes]
    if not keys:
        return []
    return list(
        Transaction.objects.filter(source=DISPUTE_WON_SOURCE, idempotency_key__in=keys).order_by(
            "pk"
        )
    )


def _reverse_part(
    *,
    posting: Transaction,
    amount: int,
    charged: int,
    source: str,
    key: str,
    memo: str,
    occurred_at: datetime,
) -> Transaction | None:
    """Reverse the share of ``posting`` that ``amount`` (of ``charged``, tax included) was.

    What is left of the invoice posting goes first, then what is left of the postings of won
    disputes on it (a refund after a won dispute); the first part carries ``key``, further
    parts ``<key>:<reinstatement key>``. Returns the first part.
    """
    existing = Transaction.objects.filter(source=source, idempotency_key=key).first()
    if existing is not None:
        return existing
    gross = sum(e for e in posting.entries.filter(amount__gt=0).values_list("amount", flat=True))
    share = amount if gross == charged else apply_rate(amount, Decimal(gross) / Decimal(charged))
    first, _ = ledger_reverse_in_order(
        transactions=[posting, *_reinstatements(posting)],
        amount=share,
        idempotency_key=key,
        source=source,
        memo=memo,
        posted_at=occurred_at,
    )
    if first is None:
        logger.warning("%s: nothing left of %s to reverse", key, posting)
    return first


# --- refunds and disputes -----------------------------------------------------------------
@transaction.atomic
def charge_refund_record(*, charge: Mapping[str, Any], occurred_at: datetime) -> list[Transaction]:
    """Reverse the invoice posting for each refund of ``charge`` not reversed yet.

    Each Stripe refund is posted once (key ``stripe:refund:<refund id>``), pro rata over the
    invoice posting. When the event does not list the refunds (API versions since 2022 leave
    ``refunds`` out unless expanded) they are listed from Stripe. Charges outside invoices are not
    subscription revenue: nothing to do. The invoice is the one the charge's payment intent
    paid (the invoice payment index; one Stripe lookup when it is not known yet). Raises
    EffectNotReadyError when the invoice's payment has not been booked and cannot be from
    the mirror yet.
    """
    if not charge.get("amount_refunded"):
        return []
    invoice_id = invoice_id_for_charge(charge=charge)
    if not invoice_id:
        return []
    posting = _invoice_posting(invoice_id, occurred_at=occurred_at)
    charge_id = stripe_id(charge.get("id"))
    charged = int(charge.get("amount") or 0)
    refunds = (charge.get("refunds") or {}).get("data")
    if refunds is None:
        refunds = [
            r.to_dict()
            for r in stripe.Refund.list(
                charge=charge_id, api_key=stripe_api_key(charge.get("livemode"))
            ).auto_paging_iter()
        ]
    parts = [
        (f"stripe:refund:{r['id']}", int(r["amount"]))
        for r in sorted(refunds, key=lambda r: (r.get("created") or 0, r["id"]))
        if r.get("status") in (None, "succeeded", "pending")
    ]
    done = []
    for key, amount in parts:
        if amount <= 0:
            continue
        reversal = _reverse_part(
            posting=posting,
            amount=amount,
            charged=charged,
            source=REFUND_SOURCE,
            key=key,
            memo=f"Refund on charge {charge_id} (invoice {invoice_id})",
            occurred_at=occurred_at,
        )
        if reversal is not None:
            done.append(reversal)
    return done


def _dispute_invoice_id(dispute: Mapping[str, Any]) -> str:
    """The invoice the disputed payment paid, through its payment intent ("" if none)."""
    charge_id = stripe_id(dispute.get("charge"))
    pi_id = stripe_id(dispute.get("payment_intent"))
    if not pi_id:
        data = djm.Charge.objects.filter(id=charge_id).values_list("stripe_data", flat=True).first()
        if data is None:
            data = stripe.Charge.retrieve(
                charge_id, api_key=stripe_api_key(dispute.get("livemode"))
            ).to_dict()
        pi_id = stripe_id(data.get("payment_intent"))
    return invoice_id_for_payment_intent(
        payment_intent_id=pi_id, charge_id=charge_id, livemode=dispute.get("livemode")
    )


@transaction.atomic
def dispute_record(*, dispute: Mapping[str, Any], occurred_at: datetime) -> Transaction | None:
    """Reverse the disputed amount of the charge's invoice posting (key ``stripe:dispute:<id>``).

    The funds leave Stripe's balance when the dispute opens (``charge.dispute.created``), or
    when an inquiry escalates (``charge.dispute.funds_withdrawn``; the key makes the two one).
    Returns the reversal (the existing one on a replay), or None for inquiries (no funds
    withdrawn), charges outside invoices and when nothing is left to reverse.
    """
    if dispute_is_inquiry(dispute):
        return None
    charge_id = stripe_id(dispute.get("charge"))
    invoice_id = _dispute_invoice_id(dispute)
    if not invoice_id:
        return None
    posting = _invoice_posting(invoice_id, occurred_at=occurred_at)
    charged = sum(e for e in posting.entries.filter(amount__gt=0).values_list("amount", flat=True))
    return _reverse_part(
        posting=posting,
        amount=int(dispute["amount"]),
        charged=charged,
        source=DISPUTE_SOURCE,
        key=dispute_key(dispute["id"]),
        memo=f"Dispute {dispute['id']} on charge {charge_id} (invoice {invoice_id})",
        occurred_at=occurred_at,
    )


@transaction.atomic
def dispute_won_record(*, dispute: Mapping[str, Any], occurred_at: datetime) -> Transaction | None:
    """Book back what a dispute the merchant won had reversed (key ``stripe:dispute.won:<id>``).

    Posts the dispute reversal's lines negated, so clearing, revenue and tax payable are back
    to their balances before the dispute; once per dispute, whichever of
    ``charge.dispute.funds_reinstated`` and ``charge.dispute.closed`` comes first. When the
    dispute's opening was not booked yet (events out of order) it is booked first, at the
    dispute's ``created``. Returns None when the dispute reversed nothing (a charge outside
    invoices, an invoice refunded in full before). Raises EffectNotReadyError like
    ``dispute_record``.
    """
    opened_at = _timestamp(dispute.get("created")) or occurred_at
    reversal = dispute_record(dispute=dispute, occurred_at=opened_at)
    if reversal is None:
        return None
    lines = [
        Line(entry.account, -entry.amount, entry.currency)
        for entry in reversal.entries.select_related("account").order_by("pk")
    ]
    return ledger_post(
        idempotency_key=dispute_won_key(dispute["id"]),
        source=DISPUTE_WON_SOURCE,
        lines=lines,
        memo=f"Dispute {dispute['id']} won: {reversal.memo}"[:500],
        posted_at=occurred_at,
    )


@transaction.atomic
def dispute_closed_record(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> Transaction | None:
    """A closed dispute: ``won`` books the reinstatement (``dispute_won_record``).

    ``lost`` needs nothing beyond the reversal booked when it opened (booked here if that
    event has not been processed yet); returns None. Other statuses (``warning_closed``: an
    inquiry) change nothing.
    """
    status = dispute.get("status")
    if status == "won":
        return dispute_won_record(dispute=dispute, occurred_at=occurred_at)
    if status == "lost":
        dispute_record(
            dispute=dispute, occurred_at=_timestamp(dispute.get("created")) or occurred_at
        )
    return None


# --- subscription state and MRR -----------------------------------------------------------
@transaction.atomic
def subscription_state_apply(
    *, subscription: Mapping[str, Any], event_id: str, occurred_at: datetime
) -> SubscriptionState:
    """Apply a subscription as of ``occurred_at`` (the event's ``created``) to our state.

    Older events never overwrite newer state: an event created before the state's ``as_of``
    changes nothing. Stripe's ``created`` has one-second resolution, so an event of the same
    second is applied (in delivery order), except that it cannot bring a canceled subscription
    back. When the subscription's MRR changes an MRR movement is recorded (once per event);
    when it becomes canceled its open dunning cases are CLOSED.
    """
    sub_id = stripe_id(subscription.get("id"))
    customer_id = stripe_id(subscription.get("customer"))
    status = str(subscription.get("status") or "")
    # An event lists discounts by id; their coupons come from the mirror.
    subscription = subscription_discounts_expanded(subscription=subscription)
    currency, mrr = subscription_mrr(subscription, at=occurred_at)
    # Serialise MRR changes per customer: a movement's kind depends on the customer's total.
    list(djm.Customer.objects.select_for_update().filter(id=customer_id).values_list("pk"))
    state, created = SubscriptionState.objects.select_for_update().get_or_create(
        stripe_subscription_id=sub_id,
        defaults={
            "stripe_customer_id": customer_id,
            "status": status,
            "currency": currency,
            "mrr": mrr,
            "as_of": occurred_at,
        },
    )
    old_mrr = 0
    if not created:
        stale = occurred_at < state.as_of or (
            occurred_at == state.as_of and state.status == "canceled" and status != "canceled"
        )
        if stale:
            return state
        old_mrr = state.mrr
        state.stripe_customer_id = customer_id
        state.status = status
        state.currency = currency or state.currency
        state.mrr = mrr
        state.as_of = occurred_at
        state.save()
    if mrr != old_mrr:
        mrr_movement_record(
            stripe_customer_id=customer_id,
            stripe_subscription_id=sub_id,
            currency=state.currency,
            old_mrr=old_mrr,
            new_mrr=mrr,
            occurred_at=occurred_at,
            source_event_id=event_id,
        )
    if status == "canceled":
        DunningCase.objects.filter(
            stripe_subscription_id=sub_id, status=DunningCase.Status.OPEN
        ).update(status=DunningCase.Status.CLOSED, resolved_at=occurred_at)
    return state


# --- dunning ------------------------------------------------------------------------------
def _payment_error(invoice: Mapping[str, Any]) -> dict[str, str]:
    """Why the invoice's payment failed: its payment intent's ``last_payment_error``.

    The payment intent is the invoice's default invoice payment's (``invoice_payments``);
    it is read from the mirror (``payment_intent.payment_failed`` comes before
    ``invoice.payment_failed``), else from Stripe. An invoice that could not even be
    finalized reports ``last_finalization_error`` instead.
    """
    error: Mapping[str, Any] = invoice.get("last_finalization_error") or {}
    pi_id = invoice_payment_intent_id(invoice=invoice)
    if pi_id:
        data = djm.PaymentIntent.objects.filter(id=pi_id).values_list("stripe_data", flat=True)
        intent = data.first()
        if intent is None:
            intent = stripe.PaymentIntent.retrieve(
                pi_id, api_key=djstripe_settings.get_default_api_key(invoice.get("livemode"))
            ).to_dict()
        error = intent.get("last_payment_error") or error
    return {
        "last_failure_code": str(error.get("code") or "")[:64],
        "last_decline_code": str(error.get("decline_code") or "")[:64],
        "last_failure_message": str(error.get("message") or "")[:500],
    }


@transaction.atomic
def invoice_payment_failed_record(
    *, invoice: Mapping[str, Any], occurred_at: datetime
) -> DunningCase:
    """Open (or update) the dunning case of an invoice whose payment failed.

    One case per invoice (unique ``stripe_invoice_id``): a repeated failure updates the
    attempt count, the next retry time and the failure (the payment intent's
    ``last_payment_error``: code, decline code, message); a case already RECOVERED or
    CLOSED keeps its status (a late failure event does not reopen it).
    """
    invoice_id = stripe_id(invoice.get("id"))
    attempts = int(invoice.get("attempt_count") or 0)
    fields: dict[str, Any] = {
        "stripe_subscription_id": _invoice_subscription_id(invoice),
        "stripe_customer_id": stripe_id(invoice.get("customer")),
        "amount_due": int(invoice.get("amount_due") or 0),
        "currency": str(invoice.get("currency") or "").lower(),
        "attempt_count": attempts,
        "next_payment_attempt": _timestamp(invoice.get("next_payment_attempt")),
        **_payment_error(invoice),
    }
    case, created = DunningCase.objects.select_for_update().get_or_create(
        stripe_invoice_id=invoice_id, defaults={**fields, "opened_at": occurred_at}
    )
    if not created and attempts >= case.attempt_count:
        for name, value in fields.items():
            setattr(case, name, value)
        case.save()
    return case


# --- staff actions ------------------------------------------------------------------------
class RefundError(ValueError):
    """Stripe refused the refund (already refunded, amount too large, …); message says why."""


def charge_refund(
    *,
    charge_id: str,
    amount: int | None = None,
    reason: str = "requested_by_customer",
    request_key: str | None = None,
) -> str:
    """Refund ``amount`` minor units of a charge (all that is left when None) at Stripe.

    Returns the Stripe refund id. The ledger effect comes from the ``charge.refunded`` webhook
    (``charge_refund_record``), keyed by that refund id, so it is posted exactly once however
    often either side runs. The Stripe idempotency key is derived from the charge and
    ``request_key`` (the staff form's one-time token, so a double-submitted form refunds once)
    or, without one, from the amount and how much was refunded before. Raises RefundError
    when Stripe refuses.
    """
    if amount is not None and amount <= 0:
        raise RefundError("the amount must be positive")
    if request_key:
        key = f"refund:{charge_id}:{request_key}"
    else:
        charge = stripe.Charge.retrieve(charge_id, api_key=stripe_api_key())
        already = int(charge["amount_refunded"] or 0)
        key = f"refund:{charge_id}:{already}:{amount if amount is not None else 'rest'}"
    # Stripe replays an idempotent request; this also tells staff it was a double submit.
    if request_key and not cache.add(f"subscriptions:{key}", "1", timeout=24 * 3600):
        raise RefundError("This refund was already submitted.")
    params: dict[str, Any] = {"charge": charge_id, "reason": reason}
    if amount is not None:
        params["amount"] = amount
    try:
        refund = stripe.Refund.create(**params, idempotency_key=key, api_key=stripe_api_key())
    except stripe.InvalidRequestError as exc:
        raise RefundError(exc.user_message or str(exc)) from exc
    logger.info("refund %s of charge %s created (amount %s)", refund.id, charge_id, amount)
    return str(refund.id)
