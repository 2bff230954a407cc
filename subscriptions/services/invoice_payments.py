"""Which invoice a payment intent paid: the index of Stripe's invoice payments.

At our API version charges and payment intents no longer name their invoice; Stripe links
them through the invoice payment (``inpay_…``: ``invoice``, ``payment.payment_intent``).
dj-stripe 2.11 does not mirror invoice payments, so :class:`~subscriptions.models.InvoicePayment`
keeps the link:

- ``invoice_payment.paid`` (Stripe sends it before ``invoice.paid``) records the payment;
- ``invoice.paid`` records the invoice's ``payments`` when the event carries them (only
  when expanded, so usually it does not, and nothing is called for);
- a refund or dispute whose payment intent is not in the index yet (an event missed or not
  processed yet) looks it up once with ``InvoicePayment.list(payment=…)`` and records it,
  so the next event on that payment needs no call.

The Events-API reconciliation (``inbox.stripe_reconcile``) replays every missed event type,
``invoice_payment.paid`` included, through the same receivers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe
from django.db import transaction

from revenue_site.stripe_errors import BillingError, stripe_errors
from revenue_site.stripe_payloads import stripe_id
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.models import InvoicePayment

logger = logging.getLogger(__name__)

# A later status never goes back to an earlier one (events may come out of order).
_STATUS_RANK = {"open": 0, "canceled": 1, "paid": 2}


@transaction.atomic
def invoice_payment_record(
    *, invoice_payment: Mapping[str, Any], charge_id: str = ""
) -> InvoicePayment | None:
    """Record (or bring up to date) one Stripe invoice payment in the index.

    Idempotent on the invoice payment id; a status never moves back (``paid`` stays).
    ``charge_id`` is the payment intent's charge when the caller knows it. Returns None for
    payments that are not payment intents (nothing of ours refers to them).
    """
    payment = invoice_payment.get("payment") or {}
    pi_id = stripe_id(payment.get("payment_intent"))
    charge_id = charge_id or stripe_id(payment.get("charge"))
    if not pi_id:
        return None
    status = str(invoice_payment.get("status") or "open")
    amount = invoice_payment.get("amount_paid")
    if amount is None:
        amount = invoice_payment.get("amount_requested")
    fields = {
        "stripe_invoice_id": stripe_id(invoice_payment.get("invoice")),
        "stripe_payment_intent_id": pi_id,
        "stripe_charge_id": charge_id,
        "status": status,
        "amount": int(amount or 0),
        "currency": str(invoice_payment.get("currency") or "").lower(),
        "created": datetime.fromtimestamp(int(invoice_payment.get("created") or 0), tz=UTC),
    }
    row, created = InvoicePayment.objects.select_for_update().get_or_create(
        stripe_invoice_payment_id=stripe_id(invoice_payment.get("id")), defaults=fields
    )
    if created:
        return row
    changed = []
    if _STATUS_RANK.get(status, 0) > _STATUS_RANK.get(row.status, 0):
        row.status, row.amount = status, int(amount or 0)
        changed += ["status", "amount"]
    if charge_id and not row.stripe_charge_id:
        row.stripe_charge_id = charge_id
        changed.append("stripe_charge_id")
    if changed:
        row.save(update_fields=changed)
    return row


def invoice_payments_record_from_invoice(*, invoice: Mapping[str, Any]) -> list[InvoicePayment]:
    """Record the payments an invoice carries (``payments``, present only when expanded)."""
    listed = (invoice.get("payments") or {}).get("data") or []
    rows = [invoice_payment_record(invoice_payment=data) for data in listed]
    return [row for row in rows if row is not None]


def invoice_id_for_payment_intent(
    *, payment_intent_id: str, charge_id: str = "", livemode: bool | None = None
) -> str:
    """The id of the invoice ``payment_intent_id`` paid, or "" when it paid no invoice.

    Reads the index; a payment intent not in it is looked up once at Stripe
    (``InvoicePayment.list(payment={type: payment_intent, …})``) and what Stripe lists is
    recorded, so later refunds and disputes of the same payment read the index only.
    """
    if not payment_intent_id:
        return ""
    row = InvoicePayment.objects.filter(stripe_payment_intent_id=payment_intent_id).first()
    if row is None:
        listing = stripe.InvoicePayment.list(
            payment={"type": "payment_intent", "payment_intent": payment_intent_id},
            api_key=stripe_api_key(livemode),
        )
        for data in listing.auto_paging_iter():
            row = invoice_payment_record(invoice_payment=data.to_dict(), charge_id=charge_id)
        if row is None:
            return ""
    if charge_id and not row.stripe_charge_id:
        InvoicePayment.objects.filter(pk=row.pk, stripe_charge_id="").update(
            stripe_charge_id=charge_id
        )
    return row.stripe_invoice_id


def invoice_id_for_charge(*, charge: Mapping[str, Any]) -> str:
    """The id of the invoice a charge paid (through its payment intent), or ""."""
    return invoice_id_for_payment_intent(
        payment_intent_id=stripe_id(charge.get("payment_intent")),
        charge_id=stripe_id(charge.get("id")),
        livemode=charge.get("livemode"),
    )


def invoice_ids_for_payment_intents(payment_intent_ids: list[str]) -> dict[str, str]:
    """payment intent id -> invoice id, from the index only (one query; for pages)."""
    rows = InvoicePayment.objects.filter(stripe_payment_intent_id__in=payment_intent_ids)
    return dict(rows.values_list("stripe_payment_intent_id", "stripe_invoice_id"))


def invoice_payment_step(*, invoice: Mapping[str, Any]) -> dict[str, str] | None:
    """What a customer's browser needs to pay an open invoice with Stripe.js (3-D Secure):
    the PaymentIntent behind the invoice's ``confirmation_secret`` (expanded), its status and
    the client secret; None when the invoice is not open or carries no secret. Called after
    the subscription exists, so it never fails: a status Stripe cannot give now is "" (the
    secret is all the browser needs)."""
    secret = str((invoice.get("confirmation_secret") or {}).get("client_secret") or "")
    if invoice.get("status") != "open" or "_secret_" not in secret:
        return None
    intent_id = secret.split("_secret_", 1)[0]
    try:
        with stripe_errors():
            status = stripe.PaymentIntent.retrieve(
                intent_id, api_key=stripe_api_key(invoice.get("livemode"))
            ).status
    except BillingError as exc:
        logger.warning("payment %s: status unreadable now: %s", intent_id, exc)
        status = ""
    return {"payment_intent": intent_id, "status": status, "client_secret": secret}


def invoice_payment_intent_id(*, invoice: Mapping[str, Any]) -> str:
    """The payment intent of an invoice's current (default) payment, or "" when it has none.

    From what the invoice carries when it was expanded (``payments``,
    ``confirmation_secret``), else the index, else one ``InvoicePayment.list(invoice=…)``.
    """
    invoice_id = stripe_id(invoice.get("id"))
    listed = (invoice.get("payments") or {}).get("data") or []
    for data in listed:
        if data.get("is_default"):
            return stripe_id((data.get("payment") or {}).get("payment_intent"))
    secret = str((invoice.get("confirmation_secret") or {}).get("client_secret") or "")
    if secret.startswith("pi_") and "_secret_" in secret:
        return secret.split("_secret_", 1)[0]
    row = (
        InvoicePayment.objects.filter(stripe_invoice_id=invoice_id)
        .exclude(stripe_payment_intent_id="")
        .exclude(status="canceled")
        .order_by("-created", "-pk")
        .first()
    )
    if row is not None:
        return row.stripe_payment_intent_id
    if not invoice_id:
        return ""
    listing = stripe.InvoicePayment.list(
        invoice=invoice_id, api_key=stripe_api_key(invoice.get("livemode"))
    )
    for listed_payment in listing.auto_paging_iter():
        data = listed_payment.to_dict()
        if data.get("is_default"):
            return stripe_id((data.get("payment") or {}).get("payment_intent"))
    return ""


# Refunds that moved money: Stripe's statuses for a refund that is done or on its way.
_REFUND_MOVES_MONEY = (None, "succeeded", "pending")


def charge_refund_list(*, charge: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The refunds of ``charge`` that moved money (amount > 0), oldest first (by created, id).

    At our API version a charge carries its refunds only when expanded; otherwise they are
    listed from Stripe. The invoice postings and the affiliate clawbacks both read them here.
    """
    refunds = (charge.get("refunds") or {}).get("data")
    if refunds is None:
        refunds = [
            refund.to_dict()
            for refund in stripe.Refund.list(
                charge=stripe_id(charge.get("id")),
                api_key=stripe_api_key(charge.get("livemode")),
            ).auto_paging_iter()
        ]
    return [
        dict(refund)
        for refund in sorted(refunds, key=lambda r: (r.get("created") or 0, r["id"]))
        if refund.get("status") in _REFUND_MOVES_MONEY and int(refund.get("amount") or 0) > 0
    ]
