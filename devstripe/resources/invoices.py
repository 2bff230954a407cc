"""Invoices: paying with the right payment method, and the events localstripe never emits.

``invoice.finalized`` and ``invoice.paid`` are emitted; a declined payment leaves the invoice
open and reports ``invoice.payment_failed``; ``POST /v1/invoices/<id>/pay`` answers 402 on a
decline, as Stripe does, and takes ``payment_method`` (one of the invoice's customer's, else
400) to pay with instead of the defaults. Exported invoices and lines carry ids instead of
nested objects where Stripe returns ids.

Invoices and lines are exported as API version 2026-08-26.dahlia has them: no ``charge``,
``payment_intent``, ``paid``, ``subscription``, ``tax``...; the subscription is under
``parent.subscription_details``, a line's origin under ``parent`` and its price under
``pricing.price_details``. How an invoice was paid is an :class:`InvoicePayment`
(``inpay_...``): one per payment intent the invoice creates, ``open`` until it succeeds, then
``paid`` with ``invoice_payment.paid`` (after ``payment_intent.succeeded``, before
``invoice.paid``); a new attempt with a new payment intent cancels the open one.
``GET /v1/invoice_payments`` (filters ``invoice``, ``payment[type]``,
``payment[payment_intent]``, ``status``) and ``GET /v1/invoice_payments/<id>``. An invoice
carries ``payments`` and ``confirmation_secret`` only when they are expanded, as Stripe
includes them.

``billing_reason`` is ``subscription_create``, ``subscription_cycle`` (renewals, see
``test_clocks.py``) or ``subscription_update`` (``always_invoice`` prorations, ending a trial
early), ``manual`` otherwise. A customer's credit (``balance``, negative in Stripe's sign) is
applied when an invoice is finalized: a negative invoice (a downgrade's prorations) charges
nothing and adds its amount to the credit, and the next invoices use it up first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    Invoice,
    InvoiceLineItem,
    List,
    PaymentIntent,
    PaymentMethod,
    StripeObject,
    Subscription,
    SubscriptionItem,
    store,
)

from .base import ACCOUNT_ID, customer_time, emit, includable, now
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


_orig_invoice_init: Any = None  # the original, captured by install()


def _invoice_init(self: Invoice, *args: Any, **kwargs: Any) -> None:
    # Set before localstripe's __init__, which emits invoice.created at its end.
    self._billing_reason = _billing_reasons[-1] if _billing_reasons else None
    with customer_time(kwargs.get("customer")):
        _orig_invoice_init(self, *args, **kwargs)
    # localstripe marks every item it invoices with the invoice; a subscription item has no
    # such field (a line points at its item, not the other way round).
    for item in kwargs.get("items") or []:
        if isinstance(item, SubscriptionItem):
            vars(item).pop("invoice", None)


# --- invoice payments ---------------------------------------------------------------------
class InvoicePayment(StripeObject):
    """How an invoice is paid: here always by a payment intent."""

    object = "invoice_payment"
    _id_prefix = "inpay_"

    def __init__(self, invoice: Invoice, payment_intent: PaymentIntent) -> None:
        super().__init__()
        self.invoice = invoice.id
        self.amount_paid: int | None = None
        self.amount_requested = payment_intent.amount
        self.currency = payment_intent.currency
        self.is_default = True
        self.payment = {"type": "payment_intent", "payment_intent": payment_intent.id}
        self.status = "open"
        self.status_transitions: dict[str, int | None] = {"canceled_at": None, "paid_at": None}

    @classmethod
    def _api_create(cls, **data: Any) -> InvoicePayment:
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> InvoicePayment:
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_delete(cls, id: str) -> Any:
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_list_all(
        cls,
        url: str,
        invoice: str | None = None,
        payment: Any = None,
        status: str | None = None,
        limit: Any = None,
        starting_after: str | None = None,
        **kwargs: Any,
    ) -> List:
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        if payment is not None and not (
            isinstance(payment, dict)
            and payment.get("type") in ("payment_intent", "charge", "payment_record")
            and set(payment) <= {"type", "payment_intent", "charge", "payment_record"}
        ):
            raise UserError(
                400, "Invalid payment: must be a hash with a type", {"param": "payment"}
            )
        li = List(url, limit=limit, starting_after=starting_after)
        found = [p for key, p in store.items() if key.startswith("invoice_payment:")]
        if invoice is not None:
            found = [p for p in found if p.invoice == invoice]
        if payment is not None:
            kind = payment["type"]
            found = [
                p
                for p in found
                if p.payment["type"] == kind
                and (payment.get(kind) is None or p.payment.get(kind) == payment.get(kind))
            ]
        if status is not None:
            found = [p for p in found if p.status == status]
        # Newest first, as Stripe lists them (creation order breaks ties within a second).
        li._list = [p for _, p in sorted(enumerate(found), key=lambda e: (e[1].created, e[0]))][
            ::-1
        ]
        return li


def invoice_payments_of(invoice_id: str) -> list[InvoicePayment]:
    """The invoice's payments, oldest first."""
    return [
        p
        for key, p in store.items()
        if key.startswith("invoice_payment:") and p.invoice == invoice_id
    ]


def _invoice_payment_open(invoice: Invoice, pi: PaymentIntent) -> InvoicePayment:
    """A new attempt: the open payment before it is canceled, the new one is the default."""
    for previous in invoice_payments_of(invoice.id):
        if previous.status == "open":
            previous.status = "canceled"
            previous.is_default = False
            previous.status_transitions["canceled_at"] = now()
    return InvoicePayment(invoice, pi)


def _invoice_payment_paid(invoice: Invoice) -> None:
    for payment in invoice_payments_of(invoice.id):
        if payment.status != "open":
            continue
        pi = store.get("payment_intent:" + payment.payment["payment_intent"])
        if pi is None or pi.status != "succeeded":
            continue
        payment.status = "paid"
        payment.amount_paid = pi.amount
        payment.status_transitions["paid_at"] = now()
        emit("invoice_payment.paid", payment)


def _retrieve_invoice_payment(id: str, **kwargs: Any) -> InvoicePayment:
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
    obj = store.get("invoice_payment:" + id)
    if obj is None:
        raise UserError(
            404, f"No such invoice payment: '{id}'", {"code": "resource_missing", "param": "id"}
        )
    return obj


def _list_invoice_payments(**kwargs: Any) -> List:
    return InvoicePayment._api_list_all("/v1/invoice_payments", **kwargs)


def _payments_included(obj: dict[str, Any]) -> dict[str, Any]:
    li = List("/v1/invoice_payments?invoice=" + obj["id"], limit=100)
    li._list = invoice_payments_of(obj["id"])[::-1]
    return li._export()


def _confirmation_secret_included(obj: dict[str, Any]) -> dict[str, Any] | None:
    invoice = store.get("invoice:" + obj["id"])
    pi_id = getattr(invoice, "payment_intent", None)
    pi = store.get("payment_intent:" + pi_id) if pi_id else None
    if pi is None:
        return None
    return {"client_secret": pi.client_secret, "type": "payment_intent"}


includable[("invoice", "payments")] = _payments_included
includable[("invoice", "confirmation_secret")] = _confirmation_secret_included


def _pay_invoice_on_clock(cls: type[Invoice], id: str, **kwargs: Any) -> Invoice:
    with customer_time(cls._api_retrieve(id).customer):
        return _pay_invoice(cls, id, **kwargs)


def _pay_invoice(cls: type[Invoice], id: str, payment_method: Any = None, **kwargs: Any) -> Invoice:
    """Pay with ``payment_method`` (one of the invoice's customer's, as Stripe requires),
    else the invoice's, the subscription's or the customer's default payment method.

    A decline leaves the invoice open and reports ``invoice.payment_failed`` (localstripe
    swallows declines here). Raises 402 only for ``payment_behavior=error_if_incomplete``.
    """
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    obj = cls._api_retrieve(id)
    if payment_method is not None:
        if not isinstance(payment_method, str) or not payment_method:
            raise UserError(400, "Invalid payment_method")
        pm = PaymentMethod._api_retrieve(payment_method)  # 404 when there is none
        if pm.customer != obj.customer:
            raise UserError(
                400,
                f"The PaymentMethod {pm.id} does not belong to the Customer {obj.customer}. "
                "Please use a PaymentMethod attached to that Customer.",
            )
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
    pm_id = (
        payment_method
        or getattr(obj, "_default_payment_method", None)
        or getattr(sub, "default_payment_method", None)
    )
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
    _invoice_payment_open(obj, pi)
    if (
        sub is not None
        and sub.status == "incomplete"
        and getattr(sub, "_default_incomplete", False)
    ):
        return obj  # the customer confirms the payment intent (confirmation_secret)
    pi._confirm(on_failure_now=lambda: None)
    if pi.latest_charge is not None and pi.latest_charge.status == "failed":
        emit("payment_intent.payment_failed", pi)
        obj._on_payment_failure_now()
    elif pi.status == "requires_action" and sub is not None:
        _first_payment_needs_action(sub, pi)
    return obj


def _first_payment_needs_action(sub: Subscription, pi: PaymentIntent) -> None:
    """A new subscription whose first payment needs the customer's action (3-D Secure): with
    ``payment_behavior=error_if_incomplete`` Stripe creates nothing and answers 402
    (``invoice_payment_intent_requires_action``); otherwise it stays ``incomplete`` for the
    customer to confirm the invoice's PaymentIntent."""
    if sub.status != "incomplete" or sub._enable_incomplete_payments:
        return
    Subscription._api_delete(sub.id)
    raise UserError(
        402,
        "This payment requires additional user action before it can be completed successfully.",
        {"code": "invoice_payment_intent_requires_action"},
    )


def _pay_invoice_route(id: str, **kwargs: Any) -> Invoice:
    """``POST /v1/invoices/<id>/pay``: like Stripe, a decline answers 402."""
    obj = Invoice._api_pay_invoice(id, **kwargs)
    charge = obj.charge
    if charge is not None and charge.status == "failed":
        charge._raise_failure()
    return obj


_orig_finalize: Any = None  # the original, captured by install()
_orig_invoice_paid: Any = None  # the original, captured by install()


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
    _invoice_payment_paid(self)
    emit("invoice.paid", self)
    _orig_invoice_paid(self)


# Fields localstripe exports that API version 2026-08-26.dahlia no longer has.
_REMOVED_INVOICE_FIELDS = (
    "application_fee",
    "charge",
    "date",
    "discount",
    "paid",
    "payment_intent",
    "subscription",
    "tax",
    "tax_percent",
    "total_tax_amounts",
)
_REMOVED_LINE_FIELDS = (
    "created",
    "invoice_item",
    "plan",
    "price",
    "proration",
    "subscription_item",
    "tax_amounts",
    "tax_rates",
    "type",
)


def _invoice_parent(self: Invoice) -> dict[str, Any] | None:
    if not self.subscription:
        return None
    sub = store.get("subscription:" + self.subscription)
    return {
        "type": "subscription_details",
        "quote_details": None,
        "subscription_details": {
            "metadata": dict(getattr(sub, "metadata", None) or {}),
            "subscription": self.subscription,
            "subscription_proration_date": None,
        },
    }


def _invoice_fixup(self: Invoice, obj: dict[str, Any]) -> None:
    for key in _REMOVED_INVOICE_FIELDS:
        obj.pop(key, None)
    customer = store.get("customer:" + (self.customer or ""))
    obj["default_tax_rates"] = obj.get("default_tax_rates") or []
    obj["discounts"] = []
    obj["total_discount_amounts"] = []
    obj["total_pretax_credit_amounts"] = []
    obj["amount_remaining"] = 0 if obj["status"] == "paid" else obj["amount_due"]
    obj["amount_overpaid"] = 0
    obj["amount_shipping"] = 0
    obj["pre_payment_credit_notes_amount"] = 0
    obj["post_payment_credit_notes_amount"] = 0
    obj["billing_reason"] = (
        obj.get("billing_reason")
        or getattr(self, "_billing_reason", None)
        or ("subscription_create" if self.subscription else "manual")
    )
    obj["parent"] = _invoice_parent(self)
    obj["automatic_tax"] = {
        "disabled_reason": None,
        "enabled": False,
        "liability": None,
        "provider": None,
        "status": None,
    }
    obj["issuer"] = {"type": "self"}
    obj["payment_settings"] = {
        "default_mandate": None,
        "payment_method_options": None,
        "payment_method_types": None,
    }
    obj["account_country"] = "US"
    obj["account_name"] = ACCOUNT_ID
    obj["auto_advance"] = obj["status"] in ("draft", "open")
    obj["effective_at"] = obj["status_transitions"].get("finalized_at")
    obj["test_clock"] = getattr(customer, "test_clock", None)
    obj["customer_name"] = getattr(customer, "name", None)
    obj["customer_tax_exempt"] = "none"
    obj["last_finalization_error"] = None
    obj["period_start"] = obj.get("period_start") or obj["created"]
    obj["period_end"] = obj.get("period_end") or obj["created"]
    # Stripe's sign: negative is a credit.
    obj["starting_balance"] = -self.starting_balance
    obj["ending_balance"] = -self.ending_balance if obj["status"] != "draft" else None
    obj.setdefault("number", None)
    for key in (
        "hosted_invoice_url",
        "invoice_pdf",
        "footer",
        "default_payment_method",
        "due_date",
        "on_behalf_of",
        "application",
        "latest_revision",
        "from_invoice",
        "rendering",
        "shipping_cost",
        "shipping_details",
        "customer_address",
        "customer_phone",
        "customer_shipping",
    ):
        obj.setdefault(key, None)


def _line_parent(self: InvoiceLineItem) -> dict[str, Any]:
    if self.type == "subscription":
        return {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": self.subscription,
                "subscription_item": self.subscription_item,
            },
        }
    item = store.get("invoiceitem:" + self.invoice_item)
    subscription_item = getattr(item, "_subscription_item", None)
    if self.subscription and subscription_item:
        return {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": self.invoice_item,
                "proration": bool(self.proration),
                "proration_details": {"credited_items": None},
                "subscription": self.subscription,
                "subscription_item": subscription_item,
            },
        }
    return {
        "type": "invoice_item_details",
        "invoice_item_details": {
            "invoice_item": self.invoice_item,
            "proration": bool(self.proration),
            "proration_details": {"credited_items": None},
            "subscription": self.subscription,
        },
        "subscription_item_details": None,
    }


def _unit_amount_decimal(self: InvoiceLineItem) -> str:
    if self.type == "subscription" and self.plan is not None and self.plan.amount is not None:
        return str(self.plan.amount)
    quantity = self.quantity or 1
    return format(Decimal(self.amount) / quantity, "f")


def _line_fixup(self: InvoiceLineItem, obj: dict[str, Any]) -> None:
    for key in _REMOVED_LINE_FIELDS:
        obj.pop(key, None)
    price = _price_for_plan(self.plan) if self.plan is not None else None
    obj["discountable"] = not bool(self.proration)
    obj["discounts"] = []
    obj["discount_amounts"] = []
    obj["pretax_credit_amounts"] = []
    obj["subtotal"] = self.amount
    obj["parent"] = _line_parent(self)
    obj["pricing"] = (
        {
            "type": "price_details",
            "price_details": {"price": price.id, "product": price.product},
            "unit_amount_decimal": _unit_amount_decimal(self),
        }
        if price is not None
        else None
    )


def _customer_fixup(self: Customer, obj: dict[str, Any]) -> None:
    obj["balance"] = -self.account_balance


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global _orig_invoice_init, _orig_finalize, _orig_invoice_paid
    _orig_invoice_init = Invoice.__init__
    _orig_finalize = Invoice._finalize
    _orig_invoice_paid = Invoice._on_payment_success
    Invoice.__init__ = _invoice_init
    Invoice._api_pay_invoice = classmethod(_pay_invoice_on_clock)
    Invoice._finalize = _finalize
    Invoice._on_payment_success = _on_payment_success
    Invoice._devstripe_fixup = _invoice_fixup
    InvoiceLineItem._devstripe_fixup = _line_fixup
    Customer._devstripe_fixup = _customer_fixup
