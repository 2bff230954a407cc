"""How tests reach an invoice's payment at our API version (2026-08-26.dahlia).

An invoice no longer names its charge or payment intent: its invoice payments do
(``invoice payment -> payment.payment_intent -> latest_charge``), as in Stripe.
"""

from __future__ import annotations

import stripe


def invoice_payment_intent_id(invoice_id: str) -> str:
    """The payment intent of the invoice's default (current) invoice payment."""
    payments = stripe.InvoicePayment.list(invoice=invoice_id).data
    (default,) = [p for p in payments if p.is_default]
    return str(default.payment.payment_intent)


def invoice_charge_id(invoice_id: str) -> str:
    """The latest charge of the invoice's payment intent (the one that paid it, if paid)."""
    return str(stripe.PaymentIntent.retrieve(invoice_payment_intent_id(invoice_id)).latest_charge)
