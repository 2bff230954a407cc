"""Dunning: one case per invoice whose payment failed, until it is paid or its subscription ends.

A case opens (or is updated) on ``invoice.payment_failed`` (``invoice_payment_failed_record``),
becomes RECOVERED when the invoice is paid (``dunning_cases_recover``, from the invoice
posting) and CLOSED when its subscription is canceled (``dunning_cases_close``, from the
subscription state).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import stripe
from django.db import transaction
from djstripe import models as djm

from revenue_site.stripe_payloads import stripe_id, stripe_time
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.models import DunningCase
from subscriptions.services.invoice_payments import invoice_payment_intent_id


def _invoice_subscription_id(invoice: Mapping[str, Any]) -> str:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return stripe_id(details.get("subscription"))


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
                pi_id, api_key=stripe_api_key(invoice.get("livemode"))
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
        "next_payment_attempt": stripe_time(invoice.get("next_payment_attempt")),
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


def dunning_cases_recover(*, invoice_id: str, at: datetime) -> int:
    """Mark the invoice's open dunning case RECOVERED at ``at`` (it was paid); returns how many."""
    return DunningCase.objects.filter(
        stripe_invoice_id=invoice_id, status=DunningCase.Status.OPEN
    ).update(status=DunningCase.Status.RECOVERED, resolved_at=at)


def dunning_cases_close(*, subscription_id: str, at: datetime) -> int:
    """Close the subscription's open dunning cases at ``at`` (it was canceled); returns how many."""
    return DunningCase.objects.filter(
        stripe_subscription_id=subscription_id, status=DunningCase.Status.OPEN
    ).update(status=DunningCase.Status.CLOSED, resolved_at=at)
