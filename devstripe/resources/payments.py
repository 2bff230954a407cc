"""Charges, payment intents, payment methods and refunds.

Emits ``charge.succeeded/failed/refunded``, ``refund.created``, ``payment_intent.canceled``
(with ``cancellation_reason`` and ``canceled_at``), ``payment_intent.payment_failed`` when 3D
Secure authentication fails (``/_authenticate`` with ``success=false``) and
``payment_method.attached/detached``; ``confirm`` takes a new ``payment_method`` (a retry);
refunds validate the amount left as Stripe does.
Exported as API version 2026-08-26.dahlia has them: charges carry ``outcome`` and
``payment_method_details`` (the card as a charge sees it) but no ``invoice``, and ``refunds``
only when expanded; payment intents carry ``amount_capturable``, ``confirmation_method`` and
a ``last_payment_error`` shaped like Stripe's error (``type``, ``code``, ``decline_code``,
``message``) but no ``invoice`` (an invoice's payment intents are its invoice payments,
``invoices.py``); refunds carry no ``date``.
"""

from __future__ import annotations

import time
from typing import Any

from localstripe.errors import UserError
from localstripe.resources import (
    Charge,
    PaymentIntent,
    PaymentMethod,
    Refund,
    store,
    try_convert_to_int,
)

from .base import _id_of, emit, includable

# What the issuer says when it declines (localstripe's declining test cards decline generically).
DECLINE_CODE = "generic_decline"

# --- charges, payment intents, payment methods, refunds -----------------------------------
_orig_trigger_payment: Any = None  # the original, captured by install()
_orig_set_auth_failure: Any = None  # the original, captured by install()


def _trigger_payment(self: Charge, on_success: Any = None) -> None:
    def succeeded() -> None:
        emit("charge.succeeded", self)
        if on_success:
            on_success()

    _orig_trigger_payment(self, on_success=succeeded)


def _set_auth_failure(self: Charge) -> None:
    _orig_set_auth_failure(self)
    emit("charge.failed", self)


def _card_details(card: dict[str, Any]) -> dict[str, Any]:
    """A payment method's card as ``charge.payment_method_details.card`` has it."""
    return {
        "amount_authorized": None,
        "authorization_code": None,
        "brand": card.get("brand"),
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "pass",
        },
        "country": card.get("country"),
        "exp_month": card["exp_month"],
        "exp_year": card["exp_year"],
        "fingerprint": card.get("fingerprint"),
        "funding": card.get("funding"),
        "installments": None,
        "last4": card.get("last4"),
        "mandate": None,
        "network": card.get("brand"),
        "network_token": {"used": False},
        "three_d_secure": None,
        "wallet": None,
    }


def _charge_fixup(self: Charge, obj: dict[str, Any]) -> None:
    obj.pop("invoice", None)
    obj.pop("refunds", None)  # included only when expanded (_refunds_included)
    succeeded = self.status == "succeeded"
    obj["amount_captured"] = self.amount if self.captured and self.paid else 0
    obj["disputed"] = bool(getattr(self, "disputed", False))  # set by disputes.py
    obj["billing_details"] = {"address": None, "email": None, "name": None, "phone": None}
    obj["outcome"] = {
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "approved_by_network" if succeeded else "declined_by_network",
        "reason": None if succeeded or self.status == "pending" else DECLINE_CODE,
        "risk_level": "normal",
        "seller_message": "Payment complete." if succeeded else "The bank declined the payment.",
        "type": "authorized" if succeeded else "issuer_declined",
    }
    pm = store.get("payment_method:" + (self.payment_method or ""))
    card = getattr(pm, "card", None)
    obj["payment_method_details"] = {"type": "card", "card": _card_details(card)} if card else None
    for key in (
        "application",
        "application_fee",
        "application_fee_amount",
        "failure_balance_transaction",
        "fraud_details",
        "on_behalf_of",
        "receipt_url",
        "review",
        "shipping",
        "source_transfer",
        "transfer_data",
        "transfer_group",
    ):
        obj.setdefault(key, None)
    obj["calculated_statement_descriptor"] = obj.get("statement_descriptor") or "DEVSTRIPE"


def _refunds_included(obj: dict[str, Any]) -> dict[str, Any]:
    return Refund._api_list_all(
        "/v1/refunds?charge=" + obj["id"], charge=obj["id"], limit=100
    )._export()


def _last_payment_error(self: PaymentIntent) -> dict[str, Any] | None:
    error = self.last_payment_error  # localstripe's: code, message (and charge)
    if error is None:
        return None
    declined = "charge" in error
    return {
        "advice_code": None,
        "charge": error.get("charge"),
        "code": error.get("code"),
        "decline_code": DECLINE_CODE if declined else None,
        "doc_url": "https://stripe.com/docs/error-codes/"
        + str(error.get("code")).replace("_", "-"),
        "message": error.get("message"),
        "network_advice_code": None,
        "network_decline_code": None,
        "param": None,
        "payment_method_type": "card",
        "type": "card_error" if declined else "invalid_request_error",
    }


def _payment_intent_fixup(self: PaymentIntent, obj: dict[str, Any]) -> None:
    obj.pop("invoice", None)
    obj.pop("charges", None)
    obj["latest_charge"] = _id_of(obj.get("latest_charge"))
    obj["amount_received"] = self.amount if obj["status"] == "succeeded" else 0
    obj["amount_capturable"] = self.amount if obj["status"] == "requires_capture" else 0
    obj["confirmation_method"] = "automatic"
    obj["payment_method_types"] = ["card"]
    obj["last_payment_error"] = _last_payment_error(self)
    obj["canceled_at"] = getattr(self, "_canceled_at", None)
    obj["cancellation_reason"] = getattr(self, "_cancellation_reason", None)
    for key in (
        "application",
        "application_fee_amount",
        "automatic_payment_methods",
        "cancellation_reason",
        "description",
        "on_behalf_of",
        "processing",
        "receipt_email",
        "review",
        "setup_future_usage",
        "shipping",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "transfer_data",
        "transfer_group",
    ):
        obj.setdefault(key, None)


def _refund_fixup(self: Refund, obj: dict[str, Any]) -> None:
    obj.pop("date", None)
    obj.pop("livemode", None)  # a refund has no livemode field at this version
    charge = store.get("charge:" + (self.charge or ""))
    obj["customer"] = getattr(charge, "customer", None)
    obj["payment_method"] = getattr(charge, "payment_method", None)
    for key in ("description", "failure_reason", "receipt_number", "transfer_reversal"):
        obj.setdefault(key, None)
    obj.setdefault("destination_details", {"type": "card", "card": {"type": "refund"}})


includable[("charge", "refunds")] = _refunds_included


_orig_attach: Any = None  # the original, captured by install()
_orig_detach: Any = None  # the original, captured by install()


def _attach(cls: type[PaymentMethod], id: str, **kwargs: Any) -> PaymentMethod:
    obj = _orig_attach(id, **kwargs)
    emit("payment_method.attached", obj)
    return obj


def _detach(cls: type[PaymentMethod], id: str, **kwargs: Any) -> PaymentMethod:
    obj = _orig_detach(id, **kwargs)
    emit("payment_method.detached", obj)
    return obj


_orig_payment_intent_cancel: Any = None  # the original, captured by install()
# Stripe's ``cancellation_reason`` values a caller may give (``automatic``, ``failed_invoice``,
# ``void_invoice`` are Stripe's own).
CANCELLATION_REASONS = ("abandoned", "duplicate", "fraudulent", "requested_by_customer")


def _payment_intent_cancel(
    cls: type[PaymentIntent], id: str, cancellation_reason: Any = None, **kwargs: Any
) -> PaymentIntent:
    """``POST /v1/payment_intents/<id>/cancel``: as localstripe's, plus what Stripe adds:
    ``cancellation_reason``, ``canceled_at`` and the ``payment_intent.canceled`` event."""
    if cancellation_reason is not None and cancellation_reason not in CANCELLATION_REASONS:
        raise UserError(400, "Invalid cancellation_reason", {"param": "cancellation_reason"})
    obj = _orig_payment_intent_cancel(id, **kwargs)
    obj._canceled_at = int(time.time())
    obj._cancellation_reason = cancellation_reason
    emit("payment_intent.canceled", obj)
    return obj


_orig_payment_intent_authenticate: Any = None  # the original, captured by install()


def _payment_intent_authenticate(
    cls: type[PaymentIntent], id: str, client_secret: Any = None, success: Any = False, **kw: Any
) -> PaymentIntent:
    """The fake's 3D Secure step, as localstripe's, plus the ``payment_intent.payment_failed``
    event Stripe sends when the customer fails authentication (the intent is back to
    ``requires_payment_method`` with ``last_payment_error``)."""
    obj = _orig_payment_intent_authenticate(id, client_secret=client_secret, success=success, **kw)
    if obj.status == "requires_payment_method" and obj._authentication_failed:
        emit("payment_intent.payment_failed", obj)
    return obj


_orig_payment_intent_confirm: Any = None  # the original, captured by install()
# States from which Stripe lets a PaymentIntent be confirmed (again, with a new method).
_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")


def _payment_intent_confirm(
    cls: type[PaymentIntent], id: str, payment_method: Any = None, **kwargs: Any
) -> PaymentIntent:
    """``POST /v1/payment_intents/<id>/confirm``: as localstripe's, plus Stripe's
    ``payment_method`` (what a customer's browser sends when they retry with another card
    after a decline or a failed authentication)."""
    if payment_method is not None:
        obj = PaymentIntent._api_retrieve(id)
        if obj.status not in _CONFIRMABLE:
            raise UserError(
                400,
                f"This PaymentIntent's status is {obj.status}; it cannot be confirmed.",
                {"code": "payment_intent_unexpected_state"},
            )
        method = PaymentMethod._api_retrieve(payment_method)
        obj.payment_method = method.id
        obj.next_action = None
        obj.latest_charge = None  # the next attempt's charge replaces the failed one
    return _orig_payment_intent_confirm(id, **kwargs)


_orig_refund_init: Any = None  # the original, captured by install()


def _refund_init(
    self: Refund,
    charge: str | None = None,
    payment_intent: str | None = None,
    amount: Any = None,
    metadata: dict[str, Any] | None = None,
    reason: str | None = None,
    **kwargs: Any,
) -> None:
    if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
        raise UserError(400, "Bad request")
    charge_obj = None
    if isinstance(charge, str):
        charge_obj = Charge._api_retrieve(charge)
    elif isinstance(payment_intent, str):
        charge_obj = PaymentIntent._api_retrieve(payment_intent).latest_charge
    if charge_obj is not None and charge_obj.status == "succeeded":
        remaining = charge_obj.amount - charge_obj.amount_refunded
        if remaining <= 0:
            raise UserError(
                400,
                f"Charge {charge_obj.id} has already been refunded.",
                {"code": "charge_already_refunded"},
            )
        wanted = try_convert_to_int(amount)
        if isinstance(wanted, int) and wanted > remaining:
            raise UserError(
                400,
                f"Refund amount ({wanted}) is greater than unrefunded amount ({remaining}).",
                {"code": "amount_too_large", "param": "amount"},
            )
    _orig_refund_init(
        self,
        charge=charge,
        payment_intent=payment_intent,
        amount=amount,
        metadata=metadata,
        **kwargs,
    )
    self.reason = reason
    charge_obj = Charge._api_retrieve(self.charge)
    self.payment_intent = self.payment_intent or charge_obj.payment_intent
    emit("refund.created", self)
    emit("charge.refunded", charge_obj)


_orig_pi_create: Any = None  # the original, captured by install()
_PI_TEXT_PARAMS = ("description", "transfer_group")


def _payment_intent_create(cls: type[PaymentIntent], **data: Any) -> PaymentIntent:
    """``description`` and ``transfer_group`` (strings, Stripe copies the group to the
    intent's charges) on top of localstripe's create."""
    extra = {key: data.pop(key) for key in _PI_TEXT_PARAMS if key in data}
    for key, value in extra.items():
        if not isinstance(value, str):
            raise UserError(400, f"Invalid string: {key}")
    obj = _orig_pi_create(**data)
    for key, value in extra.items():
        setattr(obj, key, value)
    charge = obj.latest_charge
    if charge is not None and "transfer_group" in extra:
        charge.transfer_group = extra["transfer_group"]
    return obj


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global \
        _orig_trigger_payment, \
        _orig_set_auth_failure, \
        _orig_attach, \
        _orig_detach, \
        _orig_payment_intent_cancel, \
        _orig_payment_intent_authenticate, \
        _orig_payment_intent_confirm, \
        _orig_refund_init, \
        _orig_pi_create
    _orig_pi_create = PaymentIntent._api_create
    PaymentIntent._api_create = classmethod(_payment_intent_create)
    _orig_trigger_payment = Charge._trigger_payment
    _orig_set_auth_failure = Charge._set_auth_failure
    _orig_attach = PaymentMethod._api_attach
    _orig_detach = PaymentMethod._api_detach
    _orig_refund_init = Refund.__init__
    _orig_payment_intent_cancel = PaymentIntent._api_cancel
    _orig_payment_intent_authenticate = PaymentIntent._api_authenticate
    _orig_payment_intent_confirm = PaymentIntent._api_confirm
    Charge._trigger_payment = _trigger_payment
    Charge._set_auth_failure = _set_auth_failure
    Charge._devstripe_fixup = _charge_fixup
    PaymentIntent._devstripe_fixup = _payment_intent_fixup
    Refund._devstripe_fixup = _refund_fixup
    PaymentMethod._api_attach = classmethod(_attach)
    PaymentMethod._api_detach = classmethod(_detach)
    Refund.__init__ = _refund_init
    PaymentIntent._api_cancel = classmethod(_payment_intent_cancel)
    PaymentIntent._api_authenticate = classmethod(_payment_intent_authenticate)
    PaymentIntent._api_confirm = classmethod(_payment_intent_confirm)
