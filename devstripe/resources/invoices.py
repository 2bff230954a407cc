"""Invoices: paying with the right payment method, and the events localstripe never emits.

``invoice.finalized`` and ``invoice.paid`` are emitted; a declined payment leaves the invoice
open and reports ``invoice.payment_failed``; ``POST /v1/invoices/<id>/pay`` answers 402 on a
decline, as Stripe does. Exported invoices and lines carry ids instead of nested objects where
Stripe returns ids.

``billing_reason`` is ``subscription_create``, ``subscription_cycle`` (renewals, see
``test_clocks.py``) or ``subscription_update`` (``always_invoice`` prorations, ending a trial
early), ``manual`` otherwise. A customer's credit (``balance``, negative in Stripe's sign) is
applied when an invoice is finalized: a negative invoice (a downgrade's prorations) charges
nothing and adds its amount to the credit, and the next invoices use it up first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    Invoice,
    InvoiceLineItem,
    PaymentIntent,
    Subscription,
)

from .base import _id_of, customer_time, emit, now
from .catalog import _price_for_plan

# --- invoices -----------------------------------------------------------------------------
_billing_reasons: list[str] = []


@contextmanager
def billing_reason(reason: str) -> Iterator[None]:
    """Invoices created in the block have this ``billing_reason``."""
    _billing_reasons.append(reason)
    try:
        yield
    finally:
        _billing_reasons.pop()


_orig_invoice_init = Invoice.__init__


def _invoice_init(self: Invoice, *args: Any, **kwargs: Any) -> None:
    # Set before localstripe's __init__, which emits invoice.created at its end.
    self._billing_reason = _billing_reasons[-1] if _billing_reasons else None
    with customer_time(kwargs.get("customer")):
        _orig_invoice_init(self, *args, **kwargs)


def _pay_invoice_on_clock(cls: type[Invoice], id: str, **kwargs: Any) -> Invoice:
    with customer_time(cls._api_retrieve(id).customer):
        return _pay_invoice(cls, id, **kwargs)


def _pay_invoice(cls: type[Invoice], id: str, **kwargs: Any) -> Invoice:
    """Pay with the subscription's or the customer's default payment method.

    A decline leaves the invoice open and reports ``invoice.payment_failed`` (localstripe
    swallows declines here). Raises 402 only for ``payment_behavior=error_if_incomplete``.
    """
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    obj = cls._api_retrieve(id)
    if obj.status == "paid":
        raise UserError(400, "Invoice is already paid")
    if obj.status not in ("draft", "open"):
        raise UserError(400, "Bad request")
    if obj.status == "draft":
        obj._finalize()
    if obj.total <= 0:
        obj._on_payment_success()
        return obj

    sub = Subscription._api_retrieve(obj.subscription) if obj.subscription else None
    pm_id = getattr(sub, "default_payment_method", None)
    if pm_id is None:
        source = Customer._api_retrieve(obj.customer)._get_default_payment_method_or_source()
        if source is None:
            raise UserError(404, "This customer has no payment method")
        pm_id = source.id
    pi = PaymentIntent(
        amount=obj.total, currency=obj.currency, customer=obj.customer, payment_method=pm_id
    )
    obj.payment_intent = pi.id
    pi.invoice = obj.id
    pi._confirm(on_failure_now=lambda: None)
    if pi.latest_charge is not None and pi.latest_charge.status == "failed":
        emit("payment_intent.payment_failed", pi)
        obj._on_payment_failure_now()
    return obj


def _pay_invoice_route(id: str, **kwargs: Any) -> Invoice:
    """``POST /v1/invoices/<id>/pay``: like Stripe, a decline answers 402."""
    obj = Invoice._api_pay_invoice(id, **kwargs)
    charge = obj.charge
    if charge is not None and charge.status == "failed":
        charge._raise_failure()
    return obj


_orig_finalize = Invoice._finalize
_orig_invoice_paid = Invoice._on_payment_success


def _finalize(self: Invoice) -> None:
    _orig_finalize(self)
    _settle_customer_balance(self)
    emit("invoice.finalized", self)


def _settle_customer_balance(invoice: Invoice) -> None:
    """Use up the customer's credit, or add a negative invoice's amount to it.

    localstripe keeps the credit positive in ``account_balance`` and takes it off the
    invoice's ``total`` through ``starting_balance``; it never writes the rest back.
    """
    customer = Customer._api_retrieve(invoice.customer)
    exclusive_tax = sum(t["amount"] for t in invoice.total_tax_amounts if not t["inclusive"])
    credit = max(0, invoice.starting_balance - invoice.subtotal - exclusive_tax)
    invoice.ending_balance = customer.account_balance = credit


def _on_payment_success(self: Invoice) -> None:
    self.status_transitions["paid_at"] = now()
    emit("invoice.paid", self)
    _orig_invoice_paid(self)


def _invoice_fixup(self: Invoice, obj: dict[str, Any]) -> None:
    obj["default_tax_rates"] = obj.get("default_tax_rates") or []
    obj["discounts"] = []
    obj["total_discount_amounts"] = []
    obj["charge"] = _id_of(obj.get("charge"))
    obj["paid"] = obj["status"] == "paid"
    obj["amount_remaining"] = 0 if obj["paid"] else obj["amount_due"]
    obj["billing_reason"] = (
        obj.get("billing_reason")
        or getattr(self, "_billing_reason", None)
        or ("subscription_create" if self.subscription else "manual")
    )
    # Stripe's sign: negative is a credit.
    obj["starting_balance"] = -self.starting_balance
    obj["ending_balance"] = -self.ending_balance if obj["status"] != "draft" else None
    obj.setdefault("number", None)
    for key in ("hosted_invoice_url", "invoice_pdf", "footer", "default_payment_method"):
        obj.setdefault(key, None)


def _line_fixup(self: InvoiceLineItem, obj: dict[str, Any]) -> None:
    price = _price_for_plan(self.plan) if self.plan is not None else None
    obj["price"] = price._export() if price is not None else None
    obj["discounts"] = []
    obj["discount_amounts"] = []
    obj["tax_amounts"] = obj.get("tax_amounts") or []
    obj.setdefault("subscription_item", None)
    obj["pricing"] = {
        "type": "price_details",
        "price_details": {
            "price": price.id if price else None,
            "product": price.product if price else None,
        },
    }


def _customer_fixup(self: Customer, obj: dict[str, Any]) -> None:
    obj["balance"] = -self.account_balance


Invoice.__init__ = _invoice_init  # type: ignore[method-assign]
Invoice._api_pay_invoice = classmethod(_pay_invoice_on_clock)  # type: ignore[method-assign,assignment]
Invoice._finalize = _finalize  # type: ignore[method-assign]
Invoice._on_payment_success = _on_payment_success  # type: ignore[method-assign]
Invoice._devstripe_fixup = _invoice_fixup  # type: ignore[attr-defined]
InvoiceLineItem._devstripe_fixup = _line_fixup  # type: ignore[attr-defined]
Customer._devstripe_fixup = _customer_fixup  # type: ignore[attr-defined]
