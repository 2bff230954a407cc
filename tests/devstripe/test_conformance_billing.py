"""The fake's invoices, invoice payments and payments are Stripe's at our API version.

Invoices (and their lines), invoice payments, charges, payment intents and refunds, as the
real ``stripe`` client receives them (nested ones included) and as the events carrying them
deliver them, are held to the installed stripe-python's classes (``conformance.py``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import stripe

from tests.devstripe import conformance
from tests.devstripe.clock_helpers import FEB_1, JAN_1, advance, clock_customer, make_clock
from tests.devstripe.recording import all_events
from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import key, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db

OURS = {"invoice", "line_item", "invoice_payment", "charge", "payment_intent", "refund"}


def _ours(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    if body.get("object") == "list":
        return [item for item in body.get("data") or [] if item.get("object") in OURS]
    return [body] if body.get("object") in OURS else []


def _flow() -> None:
    seat = make_price(unit_amount=1500)
    tax = stripe.TaxRate.create(display_name="VAT", inclusive=False, percentage=20)
    customer, pm = make_customer()
    sub = subscribe(customer, pm, seat, quantity=2, default_tax_rates=[tax.id])
    item = stripe.Subscription.retrieve(sub.id)["items"]["data"][0]
    stripe.Subscription.modify(
        sub.id, items=[{"id": item.id, "quantity": 3}], proration_behavior="always_invoice",
        idempotency_key=key("upgrade"),
    )  # fmt: skip
    for invoice in stripe.Invoice.list(customer=customer.id, expand=["data.payments"]).data:
        stripe.Invoice.retrieve(invoice.id, expand=["payments", "confirmation_secret"])
        stripe.Invoice.list_lines(invoice.id)
        for payment in stripe.InvoicePayment.list(invoice=invoice.id).data:
            stripe.InvoicePayment.retrieve(payment.id)
            intent = payment.payment.payment_intent
            stripe.InvoicePayment.list(payment={"type": "payment_intent", "payment_intent": intent})
            stripe.PaymentIntent.retrieve(intent)
    charge_id = invoice_charge_id(sub.latest_invoice)
    stripe.Charge.retrieve(charge_id, expand=["refunds"])
    stripe.Refund.create(charge=charge_id, amount=500, idempotency_key=key("re"))
    stripe.Refund.create(
        payment_intent=stripe.Charge.retrieve(charge_id).payment_intent, idempotency_key=key("re")
    )
    stripe.Refund.list(charge=charge_id)
    stripe.Charge.list(customer=customer.id)

    # A declined payment: an open invoice, an open invoice payment, the intent's error.
    declining, bad = make_customer(card="pm_card_chargeCustomerFail", email="no@example.com")
    failed = subscribe(
        declining,
        bad,
        seat,
        expand=["latest_invoice.confirmation_secret", "latest_invoice.payments"],
    )
    stripe.PaymentIntent.retrieve(invoice_payment_intent(failed.latest_invoice.id))
    stripe.Invoice.list(customer=declining.id)

    # A renewal on a test clock.
    clock = make_clock(JAN_1)
    clocked, clocked_pm = clock_customer(clock)
    subscribe(clocked, clocked_pm, seat)
    advance(clock, FEB_1 + 3600)
    stripe.Invoice.list(customer=clocked.id, expand=["data.payments"])


def invoice_payment_intent(invoice_id: str) -> str:
    [payment] = stripe.InvoicePayment.list(invoice=invoice_id).data
    return str(payment.payment.payment_intent)


def test_invoices_and_payments_conform_to_the_pinned_api_version(recorder):
    _flow()
    events = [e for e in all_events() if e["data"]["object"].get("object") in OURS]

    bodies = [o for _m, _u, status, body in recorder.bodies if status < 400 for o in _ours(body)]
    found = conformance.all_violations([*bodies, *events])
    report = {kind: sorted(set(problems)) for kind, problems in found.items()}
    assert report == {}, json.dumps(report, indent=1)

    kinds = {b["object"] for b in bodies}
    assert kinds == OURS
    types = {e["type"] for e in events}
    assert {
        "invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded",
        "invoice.payment_failed", "invoice_payment.paid", "charge.succeeded", "charge.failed",
        "charge.refunded", "payment_intent.succeeded", "payment_intent.payment_failed",
        "refund.created",
    } <= types  # fmt: skip


def test_an_invoice_payment_links_the_invoice_to_its_payment_intent(stripe_fake):
    customer, pm = make_customer()
    sub = subscribe(customer, pm, make_price(unit_amount=2500), expand=["latest_invoice"])
    invoice = sub.latest_invoice
    assert "payments" not in invoice and "charge" not in invoice  # included only on request
    assert invoice.parent.subscription_details.subscription == sub.id

    [payment] = stripe.InvoicePayment.list(invoice=invoice.id).data
    intent = stripe.PaymentIntent.retrieve(payment.payment.payment_intent)
    assert (payment.status, payment.amount_paid, payment.amount_requested) == ("paid", 2500, 2500)
    assert (payment.is_default, payment.currency, payment.payment.type) == (
        True, "usd", "payment_intent",
    )  # fmt: skip
    assert payment.status_transitions.paid_at == invoice.status_transitions.paid_at
    assert (intent.status, intent.amount_received) == ("succeeded", 2500)
    by_intent = stripe.InvoicePayment.list(
        payment={"type": "payment_intent", "payment_intent": intent.id}
    ).data
    assert [p.id for p in by_intent] == [payment.id]
    expanded = stripe.Invoice.retrieve(invoice.id, expand=["payments"])
    assert [p.id for p in expanded.payments.data] == [payment.id]
    with pytest.raises(stripe.InvalidRequestError):
        stripe.InvoicePayment.retrieve("inpay_nope")


def test_invoice_payment_paid_comes_between_the_payment_and_invoice_paid(stripe_fake):
    customer, pm = make_customer()
    subscribe(customer, pm, make_price())
    types = [e["type"] for e in all_events()]  # the fake lists oldest first
    paying = [
        t
        for t in types
        if t in {"charge.succeeded", "payment_intent.succeeded", "invoice_payment.paid",
                 "invoice.paid", "invoice.payment_succeeded"}
    ]  # fmt: skip
    assert paying == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]


def test_a_retry_cancels_the_open_invoice_payment(stripe_fake):
    customer, bad = make_customer(card="pm_card_chargeCustomerFail")
    sub = subscribe(customer, bad, make_price(unit_amount=1200))
    [first] = stripe.InvoicePayment.list(invoice=sub.latest_invoice).data
    error = stripe.PaymentIntent.retrieve(first.payment.payment_intent).last_payment_error
    assert (first.status, first.amount_paid) == ("open", None)
    assert (error.type, error.code, error.decline_code) == (
        "card_error", "card_declined", "generic_decline",
    )  # fmt: skip

    good = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Subscription.modify(sub.id, default_payment_method=good.id)
    stripe.Invoice.pay(sub.latest_invoice)

    payments = stripe.InvoicePayment.list(invoice=sub.latest_invoice).data
    assert [(p.status, p.is_default) for p in payments] == [("paid", True), ("canceled", False)]
    assert payments[1].id == first.id
    assert (
        stripe.InvoicePayment.list(invoice=sub.latest_invoice, status="paid").data[0].amount_paid
        == 1200
    )
