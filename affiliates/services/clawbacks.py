"""Clawbacks: refunds and disputes take back commissions pro rata; won disputes give back.

A charge's commissions are those of the invoice its payment intent paid, or, when it paid no
invoice, those of the one-time sale that payment intent is (a content licence,
``Commission.stripe_payment_intent_id``); the rules below are the same for both.

A refund or dispute claws back by partial reversals of the commission's posting
(``commission_reverse``), also after the commission was paid: the payable then goes negative
and the next payout nets it. Amounts are ``commission * refunded / charged``, rounded half
up, once per refund or dispute id (successive refunds of one charge telescope, so refunding
it in full takes back the whole commission). Inquiries (dispute status ``warning_*``) withdraw no
funds and claw back nothing until they escalate (``charge.dispute.funds_withdrawn``).

A dispute the merchant wins (``charge.dispute.funds_reinstated`` or ``charge.dispute.closed``
with status ``won``) gives back what that dispute clawed back: a posting with the clawback's
lines negated (Dr ``expense.commissions`` / Cr the affiliate's payable, key
``dispute.won:<dp>:commission:<pk>``), see ``commission_dispute_won_record``. A later clawback
reverses what is left of the accrual posting first, then of those reinstatements. A lost
dispute changes nothing more: its clawback stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from djstripe import models as djm

from affiliates.models import Commission
from affiliates.services.commissions import (
    CLAWBACK_SOURCE,
    REINSTATED_SOURCE,
    commission_key,
    commission_reverse,
)
from ledger.models import Account, Entry, Transaction
from ledger.services import Line, ledger_post
from revenue_site.stripe_payloads import dispute_is_inquiry, stripe_id, stripe_time
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.services.invoice_payments import (
    charge_refund_list,
    invoice_id_for_charge,
    invoice_id_for_payment_intent,
)


# --- clawback -----------------------------------------------------------------------------
def _share(amount: int, part: int, whole: int) -> int:
    """``amount * part / whole`` in integers, rounded half up."""
    return (2 * amount * part + whole) // (2 * whole)


def _commissions_of(*, invoice_id: str = "", payment_intent_id: str = "") -> QuerySet[Commission]:
    """The commissions earned on an invoice, or else on a one-time sale's PaymentIntent."""
    if invoice_id:
        return Commission.objects.filter(stripe_invoice_id=invoice_id)
    if payment_intent_id:
        return Commission.objects.filter(stripe_payment_intent_id=payment_intent_id)
    return Commission.objects.none()


@transaction.atomic
def commission_clawback(
    *,
    invoice_id: str = "",
    payment_intent_id: str = "",
    refunded: int,
    charged: int,
    key: str,
    occurred_at: datetime,
    refunded_before: int = 0,
) -> list[Commission]:
    """Reverse the commissions of an invoice (or, without one, of a one-time sale's
    PaymentIntent) pro rata to ``refunded`` of ``charged`` (minor units).

    Each commission loses ``amount * (refunded_before + refunded) / charged`` less
    ``amount * refunded_before / charged`` (each half up, never more than is left), so the
    parts of successive refunds of one charge (``refunded_before``: what its earlier refunds
    took) add up to the whole commission when the charge is refunded in full. The reversal is
    posted once per ``key`` (a refund or dispute id) and commission. A fully reversed
    commission becomes REVERSED whatever its status (a PAID one leaves the affiliate's payable
    negative; the next payout nets it); a partial one keeps its status.
    """
    changed = []
    whole = max(charged, 1)
    commissions = (
        _commissions_of(invoice_id=invoice_id, payment_intent_id=payment_intent_id)
        .select_for_update()
        .order_by("pk")
    )
    for commission in commissions:
        reversal_key = f"{key}:commission:{commission.pk}"
        if Transaction.objects.filter(
            source=CLAWBACK_SOURCE, idempotency_key=reversal_key
        ).exists():
            continue  # safe: the row lock above serialises clawbacks of this commission
        left = commission.amount - commission.reversed_amount
        share = _share(commission.amount, min(refunded_before + refunded, whole), whole) - _share(
            commission.amount, min(refunded_before, whole), whole
        )
        share = min(share, left)
        if share <= 0:
            continue
        commission_reverse(
            commission,
            amount=share,
            key=reversal_key,
            memo=f"Clawback {key} on {commission.source_id}",
            at=occurred_at,
        )
        if commission.reversed_amount >= commission.amount:
            commission.status = Commission.Status.REVERSED
        commission.reversed_at = occurred_at
        commission.save(update_fields=["reversed_amount", "status", "reversed_at"])
        changed.append(commission)
    return changed


def commission_refunds_record(
    *, charge: Mapping[str, Any], occurred_at: datetime
) -> list[Commission]:
    """Claw back for each refund of ``charge``, once per refund id: the commissions of the
    invoice the charge's payment intent paid (its invoice payment), or else of the one-time
    sale that payment intent is (a content licence)."""
    if not charge.get("amount_refunded"):
        return []
    invoice_id = invoice_id_for_charge(charge=charge)
    payment_intent_id = "" if invoice_id else stripe_id(charge.get("payment_intent"))
    if not _commissions_of(invoice_id=invoice_id, payment_intent_id=payment_intent_id).exists():
        return []
    charged = int(charge.get("amount") or 0)
    changed: list[Commission] = []
    refunds = charge_refund_list(charge=charge)
    # Refunds made in the same second have no order Stripe tells us (their ids are random), so
    # what earlier refunds took is what was clawed back for them, not their place in the list.
    commission_pks = list(
        _commissions_of(invoice_id=invoice_id, payment_intent_id=payment_intent_id).values_list(
            "pk", flat=True
        )
    )
    keys = [f"refund:{refund['id']}:commission:{pk}" for refund in refunds for pk in commission_pks]
    clawed = {
        key.split(":")[1]
        for key in Transaction.objects.filter(
            source=CLAWBACK_SOURCE, idempotency_key__in=keys
        ).values_list("idempotency_key", flat=True)
    }
    before = sum(int(refund["amount"]) for refund in refunds if refund["id"] in clawed)
    for refund in refunds:
        if refund["id"] in clawed:
            continue
        amount = int(refund["amount"])
        changed += commission_clawback(
            invoice_id=invoice_id,
            payment_intent_id=payment_intent_id,
            refunded=amount,
            charged=charged,
            key=f"refund:{refund['id']}",
            occurred_at=occurred_at,
            refunded_before=before,
        )
        before += amount
    return changed


@dataclass(frozen=True)
class _DisputedPayment:
    invoice_id: str  # "" outside invoices
    payment_intent_id: str  # set when there is no invoice (a one-time sale)
    charged: int


def _disputed_payment(dispute: Mapping[str, Any]) -> _DisputedPayment:
    """The disputed charge's invoice (the one its payment intent paid: its invoice payment),
    else its payment intent, and the charged amount."""
    charge_id = stripe_id(dispute.get("charge"))
    data = djm.Charge.objects.filter(id=charge_id).values_list("stripe_data", flat=True).first()
    if data is None:
        data = stripe.Charge.retrieve(
            charge_id, api_key=stripe_api_key(dispute.get("livemode"))
        ).to_dict()
    payment_intent_id = stripe_id(dispute.get("payment_intent") or data.get("payment_intent"))
    invoice_id = invoice_id_for_payment_intent(
        payment_intent_id=payment_intent_id,
        charge_id=charge_id,
        livemode=dispute.get("livemode"),
    )
    return _DisputedPayment(
        invoice_id=invoice_id,
        payment_intent_id="" if invoice_id else payment_intent_id,
        charged=int(data.get("amount") or dispute["amount"]),
    )


def commission_dispute_record(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> list[Commission]:
    """Claw back the disputed share of the charge's commissions (its invoice's, or its
    one-time sale's), once per dispute id.

    Inquiries (no funds withdrawn) claw back nothing; an escalated one does, on
    ``charge.dispute.funds_withdrawn``.
    """
    if dispute_is_inquiry(dispute):
        return []
    paid = _disputed_payment(dispute)
    if not paid.invoice_id and not paid.payment_intent_id:
        return []
    return commission_clawback(
        invoice_id=paid.invoice_id,
        payment_intent_id=paid.payment_intent_id,
        refunded=int(dispute["amount"]),
        charged=paid.charged,
        key=f"dispute:{dispute['id']}",
        occurred_at=occurred_at,
    )


def _status_before_reversal(commission: Commission) -> str:
    if commission.payout_id is not None:
        return Commission.Status.PAID
    if commission.approved_at is not None:
        return Commission.Status.APPROVED
    return Commission.Status.HELD


@transaction.atomic
def commission_dispute_won_record(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> list[Commission]:
    """Give back what a dispute the merchant won clawed back from the invoice's commissions.

    Per commission, once per dispute (key ``dispute.won:<dispute id>:commission:<pk>``): posts
    the dispute clawback's lines negated (Dr commission expense / Cr the affiliate's payable)
    and lowers ``reversed_amount`` by it. When the clawback had made the commission REVERSED
    it gets back the status it had reached before, read from what the reversal left in place:
    PAID when a payout settled it (the reinstated money is in the payable again and the next
    payout pays it), APPROVED when it was approved, else HELD (the hold and any fraud review
    apply again, ``commissions_approve_due`` approves it). A commission rejected on review
    stays REVERSED and gets nothing back. When the dispute's clawback was not booked yet
    (events out of order) it is booked first, so the result is the same. Returns the
    commissions changed.
    """
    paid = _disputed_payment(dispute)
    if not paid.invoice_id and not paid.payment_intent_id:
        return []
    dispute_id = dispute["id"]
    commission_dispute_record(
        dispute=dispute,
        occurred_at=stripe_time(dispute.get("created")) or occurred_at,
    )
    changed = []
    commissions = (
        _commissions_of(invoice_id=paid.invoice_id, payment_intent_id=paid.payment_intent_id)
        .select_for_update()
        .order_by("pk")
    )
    for commission in commissions:
        won_key = f"dispute.won:{dispute_id}:commission:{commission.pk}"
        clawback_key = f"dispute:{dispute_id}:commission:{commission.pk}"
        # Safe as lookups: the row lock above serialises changes to this commission's postings.
        if Transaction.objects.filter(source=REINSTATED_SOURCE, idempotency_key=won_key).exists():
            continue
        rejected = f"{commission_key(commission)}:rejected"
        if Transaction.objects.filter(
            Q(idempotency_key=rejected) | Q(idempotency_key__startswith=f"{rejected}:"),
            source=CLAWBACK_SOURCE,
        ).exists():
            continue
        totals = (
            Entry.objects.filter(
                Q(transaction__idempotency_key=clawback_key)
                | Q(transaction__idempotency_key__startswith=f"{clawback_key}:"),
                transaction__source=CLAWBACK_SOURCE,
            )
            .values("account_id", "currency")
            .annotate(total=Sum("amount"))
            .order_by("account_id")
        )
        rows = [row for row in totals if row["total"]]
        if not rows:
            continue
        accounts = Account.objects.in_bulk([row["account_id"] for row in rows])
        ledger_post(
            idempotency_key=won_key,
            source=REINSTATED_SOURCE,
            lines=[
                Line(accounts[row["account_id"]], -row["total"], row["currency"]) for row in rows
            ],
            memo=f"Dispute {dispute_id} won: commission on {commission.source_id} reinstated",
            posted_at=occurred_at,
        )
        commission.reversed_amount -= sum(row["total"] for row in rows if row["total"] > 0)
        if commission.status == Commission.Status.REVERSED:
            commission.status = _status_before_reversal(commission)
        if commission.reversed_amount == 0:
            commission.reversed_at = None
        commission.save(update_fields=["reversed_amount", "status", "reversed_at"])
        changed.append(commission)
    return changed


def commission_dispute_closed_record(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> list[Commission]:
    """A closed dispute: ``won`` reinstates (``commission_dispute_won_record``).

    ``lost`` needs nothing beyond the clawback made when it opened (made here if that event
    has not been processed yet); returns []. Other statuses change nothing.
    """
    status = dispute.get("status")
    if status == "won":
        return commission_dispute_won_record(dispute=dispute, occurred_at=occurred_at)
    if status == "lost":
        commission_dispute_record(
            dispute=dispute,
            occurred_at=stripe_time(dispute.get("created")) or occurred_at,
        )
    return []
