"""Disputes, enough for dj-stripe 2.11 and for testing what a chargeback does to the books.

As in Stripe's test mode, a charge paid with the card ``pm_card_createDispute`` (number
4000000000000259) succeeds and is then disputed as fraudulent: a Dispute (``needs_response``,
the full charge amount) is created, the charge is marked ``disputed`` and
``charge.dispute.created`` is emitted, after the payment's own events. Stripe opens it a few
seconds later; here it opens in the same request, so tests need not wait.

``GET /v1/disputes/<id>`` and ``GET /v1/disputes`` (filters ``charge``, ``payment_intent``;
newest first) serve them. Evidence, closing and the balance transactions of the withdrawal
are not emulated (``balance_transactions`` is empty).

Importing this module patches localstripe (after ``resources``, whose charge patches it wraps).
"""

from __future__ import annotations

from typing import Any

from localstripe.errors import UserError
from localstripe.resources import Charge, List, PaymentMethod, StripeObject, store

from .resources import emit

DISPUTE_CARD_NUMBER = "4000000000000259"
DISPUTE_TEST_PAYMENT_METHOD = "pm_card_createDispute"
EVIDENCE_DAYS = 7


class Dispute(StripeObject):
    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, charge: Charge, reason: str = "fraudulent") -> None:
        super().__init__()
        pm = store.get("payment_method:" + (charge.payment_method or ""))
        card = getattr(pm, "card", None) or {}
        self.amount = charge.amount
        self.balance_transactions: list[Any] = []
        self.charge = charge.id
        self.currency = charge.currency
        self.enhanced_eligibility_types: list[str] = []
        self.evidence = {
            "customer_email_address": None,
            "customer_name": None,
            "product_description": None,
            "uncategorized_text": None,
        }
        self.evidence_details = {
            "due_by": self.created + EVIDENCE_DAYS * 86400,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        }
        self.is_charge_refundable = False
        self.metadata: dict[str, Any] = {}
        self.network_reason_code = "10.4" if reason == "fraudulent" else None
        self.payment_intent = charge.payment_intent
        self.payment_method_details = {
            "type": "card",
            "card": {
                "brand": card.get("brand", "visa"),
                "case_type": "chargeback",
                "network_reason_code": self.network_reason_code,
            },
        }
        self.reason = reason
        self.status = "needs_response"

    @classmethod
    def _api_create(cls, **data: Any) -> Dispute:
        raise UserError(405, "Disputes are opened by card networks, not through the API")

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> Dispute:
        raise UserError(405, "Updating disputes is not supported by devstripe")

    @classmethod
    def _api_delete(cls, id: str) -> Any:
        raise UserError(405, "Disputes cannot be deleted")

    @classmethod
    def _api_list_all(
        cls,
        url: str,
        charge: str | None = None,
        payment_intent: str | None = None,
        limit: Any = None,
        starting_after: str | None = None,
        **kwargs: Any,
    ) -> List:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        li = super()._api_list_all(url, limit=limit, starting_after=starting_after)
        if charge is not None:
            li._list = [d for d in li._list if d.charge == charge]
        if payment_intent is not None:
            li._list = [d for d in li._list if d.payment_intent == payment_intent]
        # Newest first; within one second, the later one first.
        ranked = sorted(enumerate(li._list), key=lambda p: (p[1].created, p[0]), reverse=True)
        li._list = [d for _, d in ranked]
        return li


def dispute_open(charge: Charge, reason: str = "fraudulent") -> Dispute:
    """Open a dispute on ``charge`` for its full amount and tell the webhooks."""
    dispute = Dispute(charge, reason=reason)
    charge.disputed = True
    emit("charge.dispute.created", dispute)
    return dispute


def _disputes_automatically(charge: Charge) -> bool:
    pm = store.get("payment_method:" + (charge.payment_method or ""))
    return getattr(pm, "_card_number", None) == DISPUTE_CARD_NUMBER


_prev_trigger_payment = Charge._trigger_payment


def _trigger_payment(self: Charge, on_success: Any = None) -> None:
    def succeeded() -> None:
        if on_success:
            on_success()  # the payment's own events (invoice.paid, ...) come first
        if _disputes_automatically(self):
            dispute_open(self)

    _prev_trigger_payment(self, on_success=succeeded)


_prev_canonical = PaymentMethod._try_get_canonical_test_article


def _canonical_test_article(cls: type[PaymentMethod], id: str) -> PaymentMethod | None:
    if id == DISPUTE_TEST_PAYMENT_METHOD:
        return PaymentMethod(
            type="card",
            card={
                "number": DISPUTE_CARD_NUMBER,
                "exp_month": "12",
                "exp_year": "2030",
                "cvc": "123",
            },
        )
    return _prev_canonical(id)


Charge._trigger_payment = _trigger_payment  # type: ignore[method-assign]
PaymentMethod._try_get_canonical_test_article = classmethod(_canonical_test_article)  # type: ignore[method-assign,assignment]

read_only_classes: list[type[StripeObject]] = [Dispute]
