"""Charges, payment intents, payment methods and refunds.

Emits ``charge.succeeded/failed/refunded``, ``refund.created`` and
``payment_method.attached/detached``; refunds validate the amount left as Stripe does;
exported charges carry ``invoice``, ``outcome`` and ``payment_method_details``.
"""

from __future__ import annotations

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

from .base import _id_of, emit

# --- charges, payment intents, payment methods, refunds -----------------------------------
_orig_trigger_payment = Charge._trigger_payment
_orig_set_auth_failure = Charge._set_auth_failure


def _trigger_payment(self: Charge, on_success: Any = None) -> None:
    def succeeded() -> None:
        emit("charge.succeeded", self)
        if on_success:
            on_success()

    _orig_trigger_payment(self, on_success=succeeded)


def _set_auth_failure(self: Charge) -> None:
    _orig_set_auth_failure(self)
    emit("charge.failed", self)


def _charge_fixup(self: Charge, obj: dict[str, Any]) -> None:
    if self.invoice is None and self.payment_intent:
        pi = store.get("payment_intent:" + self.payment_intent)
        obj["invoice"] = getattr(pi, "invoice", None)
    obj["amount_captured"] = self.amount if self.captured and self.paid else 0
    obj["disputed"] = bool(getattr(self, "disputed", False))  # set by disputes.py
    obj["billing_details"] = {}
    obj["outcome"] = {
        "type": "authorized" if self.status == "succeeded" else "issuer_declined",
        "network_status": "approved_by_network"
        if self.status == "succeeded"
        else "declined_by_network",
    }
    pm = store.get("payment_method:" + (self.payment_method or ""))
    card = getattr(pm, "card", None)
    obj["payment_method_details"] = {"type": "card", "card": card} if card else None


def _payment_intent_fixup(self: PaymentIntent, obj: dict[str, Any]) -> None:
    obj["latest_charge"] = _id_of(obj.get("latest_charge"))
    obj["amount_received"] = self.amount if obj["status"] == "succeeded" else 0
    obj["payment_method_types"] = ["card"]
    obj.pop("charges", None)


_orig_attach = PaymentMethod._api_attach
_orig_detach = PaymentMethod._api_detach


def _attach(cls: type[PaymentMethod], id: str, **kwargs: Any) -> PaymentMethod:
    obj = _orig_attach(id, **kwargs)
    emit("payment_method.attached", obj)
    return obj


def _detach(cls: type[PaymentMethod], id: str, **kwargs: Any) -> PaymentMethod:
    obj = _orig_detach(id, **kwargs)
    emit("payment_method.detached", obj)
    return obj


_orig_refund_init = Refund.__init__


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


Charge._trigger_payment = _trigger_payment  # type: ignore[method-assign]
Charge._set_auth_failure = _set_auth_failure  # type: ignore[method-assign]
Charge._devstripe_fixup = _charge_fixup  # type: ignore[attr-defined]
PaymentIntent._devstripe_fixup = _payment_intent_fixup  # type: ignore[attr-defined]
PaymentMethod._api_attach = classmethod(_attach)  # type: ignore[method-assign,assignment]
PaymentMethod._api_detach = classmethod(_detach)  # type: ignore[method-assign,assignment]
Refund.__init__ = _refund_init  # type: ignore[method-assign]
