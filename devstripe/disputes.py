"""Disputes, enough for dj-stripe 2.11 and for testing what a chargeback does to the books.

As in Stripe's test mode, a charge paid with the card ``pm_card_createDispute`` (number
4000000000000259) succeeds and is then disputed as fraudulent: a Dispute (``needs_response``,
the full charge amount) is created, the charge is marked ``disputed`` and
``charge.dispute.created`` is emitted, after the payment's own events. Stripe opens it a few
seconds later; here it opens in the same request, so tests need not wait.

``GET /v1/disputes/<id>`` and ``GET /v1/disputes`` (filters ``charge``, ``payment_intent``;
newest first) serve them. Responding works as in Stripe's test mode:

- ``POST /v1/disputes/<id>`` stores ``evidence[...]`` and ``metadata`` and, unless
  ``submit=false``, submits the evidence: ``needs_response`` becomes ``under_review``
  (``charge.dispute.updated``). Submitted evidence whose ``uncategorized_text`` is
  ``winning_evidence`` wins the dispute (``won``: ``charge.dispute.funds_reinstated`` then
  ``charge.dispute.closed`` follow the update), ``losing_evidence`` loses it (``lost``:
  ``charge.dispute.closed``). A closed dispute takes ``metadata`` only;
- ``POST /v1/disputes/<id>/close`` accepts the dispute: ``lost``, ``charge.dispute.closed``.

Stripe decides in minutes; here in the same request. Enhanced evidence (Visa Compelling
Evidence 3.0, network compliance) is not emulated: ``evidence.enhanced_evidence`` and
``evidence_details.enhanced_eligibility`` stay empty. ``payment_method_details.card`` gives
the card's ``brand`` and the ``network`` it was charged on (the same: no co-badged cards).

The balance transactions of the withdrawal (with the dispute fee) and of the reinstatement
are added to the dispute's ``balance_transactions`` by ``balance.py``.

Importing this module patches localstripe (after ``resources``, whose charge patches it wraps).
"""

from __future__ import annotations

from typing import Any

from localstripe.errors import UserError
from localstripe.resources import (
    Charge,
    List,
    PaymentMethod,
    StripeObject,
    extra_apis,
    store,
    try_convert_to_bool,
)

from .resources import emit

DISPUTE_CARD_NUMBER = "4000000000000259"
DISPUTE_TEST_PAYMENT_METHOD = "pm_card_createDispute"
EVIDENCE_DAYS = 7
# Stripe's test-mode evidence texts (evidence[uncategorized_text]) that decide the dispute.
WINNING_EVIDENCE = "winning_evidence"
LOSING_EVIDENCE = "losing_evidence"
# The evidence fields Stripe takes as text (or a file id); all null until given.
EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)
CLOSED_STATUSES = ("won", "lost", "warning_closed")


class Dispute(StripeObject):
    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, charge: Charge, reason: str = "fraudulent") -> None:
        super().__init__()
        pm = store.get("payment_method:" + (charge.payment_method or ""))
        card = getattr(pm, "card", None) or {}
        brand = card.get("brand") or "visa"
        self.amount = charge.amount
        self.balance_transactions: list[Any] = []
        self.charge = charge.id
        self.currency = charge.currency
        self.enhanced_eligibility_types: list[str] = []
        # Enhanced evidence (Visa CE 3.0, compliance) is not emulated: none is ever given.
        self.evidence: dict[str, Any] = {**dict.fromkeys(EVIDENCE_FIELDS), "enhanced_evidence": {}}
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
                "brand": brand,
                "case_type": "chargeback",
                "network": brand,  # the network the card was charged on (no co-badged cards)
                "network_reason_code": self.network_reason_code,
            },
        }
        self.reason = reason
        self.status = "needs_response"

    @classmethod
    def _api_create(cls, **data: Any) -> Dispute:
        raise UserError(405, "Disputes are opened by card networks, not through the API")

    @classmethod
    def _api_update(
        cls,
        id: str,
        evidence: Any = None,
        metadata: Any = None,
        submit: Any = None,
        **kwargs: Any,
    ) -> Dispute:
        """Store evidence and metadata; submitting evidence decides a test-mode dispute."""
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        # Stripe submits by default; a metadata-only update has nothing to submit.
        submit = (evidence is not None) if submit is None else try_convert_to_bool(submit)
        if not isinstance(submit, bool):
            raise UserError(400, "Invalid boolean: submit")
        if evidence is not None:
            if not isinstance(evidence, dict):
                raise UserError(400, "Invalid object: evidence")
            unknown = [k for k in evidence if k not in EVIDENCE_FIELDS]
            if unknown:
                raise UserError(400, f"Received unknown parameter: evidence[{unknown[0]}]")
            if not all(isinstance(v, str) for v in evidence.values()):
                raise UserError(400, "Evidence values are strings")
        if metadata is not None and not isinstance(metadata, dict):
            raise UserError(400, "Invalid object: metadata")
        obj = cls._api_retrieve(id)
        if obj.status in CLOSED_STATUSES and (evidence is not None or submit):
            raise UserError(400, f"This dispute is already closed ({obj.status}).")
        previous: dict[str, Any] = {}
        if metadata is not None:
            previous["metadata"] = dict(obj.metadata)
            obj.metadata = {**obj.metadata, **metadata}
        if evidence:
            previous["evidence"] = dict(obj.evidence)
            obj.evidence = {**obj.evidence, **evidence}
            obj.evidence_details = {**obj.evidence_details, "has_evidence": True}
        if submit:
            previous["status"] = obj.status
            previous["evidence_details"] = dict(obj.evidence_details)
            inquiry = obj.status.startswith("warning")
            obj.status = "warning_under_review" if inquiry else "under_review"
            obj.evidence_details = {
                **obj.evidence_details,
                "submission_count": obj.evidence_details["submission_count"] + 1,
            }
        if previous:
            emit("charge.dispute.updated", obj, previous)
        decisive = obj.evidence.get("uncategorized_text")
        if submit and decisive == WINNING_EVIDENCE:
            obj._close("won")
        elif submit and decisive == LOSING_EVIDENCE:
            obj._close("lost")
        return obj

    @classmethod
    def _api_close(cls, id: str, **kwargs: Any) -> Dispute:
        """``POST /v1/disputes/<id>/close``: accept the dispute, which is then lost."""
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        obj = cls._api_retrieve(id)
        if obj.status in CLOSED_STATUSES:
            raise UserError(400, f"This dispute is already closed ({obj.status}).")
        obj._close("warning_closed" if obj.status.startswith("warning") else "lost")
        return obj

    def _close(self, status: str) -> None:
        previous = {"status": self.status}
        self.status = status
        self.is_charge_refundable = False
        if status == "won":
            # Stripe gives the disputed amount back, then closes the dispute.
            emit("charge.dispute.funds_reinstated", self, previous)
        emit("charge.dispute.closed", self, previous)

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


_prev_trigger_payment: Any = None  # the original, captured by install()


def _trigger_payment(self: Charge, on_success: Any = None) -> None:
    def succeeded() -> None:
        if on_success:
            on_success()  # the payment's own events (invoice.paid, ...) come first
        if _disputes_automatically(self):
            dispute_open(self)

    _prev_trigger_payment(self, on_success=succeeded)


_prev_canonical: Any = None  # the original, captured by install()


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


read_only_classes: list[type[StripeObject]] = [Dispute]
# server.build_app routes localstripe's extra APIs before the CRUD ones.
extra_apis.extend(
    (
        ("POST", "/v1/disputes/{id}/close", Dispute._api_close),
        ("POST", "/v1/disputes/{id}", Dispute._api_update),
    )
)


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global _prev_trigger_payment, _prev_canonical
    _prev_trigger_payment = Charge._trigger_payment
    _prev_canonical = PaymentMethod._try_get_canonical_test_article
    Charge._trigger_payment = _trigger_payment
    PaymentMethod._try_get_canonical_test_article = classmethod(_canonical_test_article)
