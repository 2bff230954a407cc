"""Invoice items and one-off invoices in the fake, as Stripe has them at our API version.

Usage billing at period close: a draft invoice for the customer (no subscription), invoice
items on it (amounts, prices with quantities, decimal unit amounts, credits), finalize, pay,
refund; pending items swept into a subscription's renewal. Every object the real stripe
client receives, events included, is held to stripe-python's classes (``conformance.py``).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import stripe

from tests.devstripe import conformance
from tests.devstripe.clock_helpers import FEB_1, JAN_1, advance, clock_customer, make_clock
from tests.devstripe.recording import all_events
from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import key, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db

OURS = {"invoiceitem", "invoice", "line_item", "invoice_payment", "charge", "refund"}
PERIOD = {"start": JAN_1, "end": FEB_1}


def _ours(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    if body.get("object") == "list":
        return [item for item in body.get("data") or [] if item.get("object") in OURS]
    return [body] if body.get("object") in OURS else []


def _draft(customer: Any, **extra: Any) -> Any:
    return stripe.Invoice.create(
        customer=customer.id,
        currency="usd",
        collection_method="charge_automatically",
        auto_advance=False,
        pending_invoice_items_behavior="exclude",
        metadata={"period": "2030-01"},
        description="Usage January 2030",
        idempotency_key=key("inv"),
        **extra,
    )


def _item(customer: Any, invoice: Any = None, **extra: Any) -> Any:
    params: dict[str, Any] = {
        "customer": customer.id,
        "period": PERIOD,
        "metadata": {"meter": "api_calls"},
        **extra,
    }
    if "pricing" not in params:  # a price's item is described by its product
        params.setdefault("description", "API calls")
    if invoice is not None:
        params["invoice"] = invoice if isinstance(invoice, str) else invoice.id
    return stripe.InvoiceItem.create(idempotency_key=key("ii"), **params)


def _one_time_price(unit_amount: int) -> Any:
    product = stripe.Product.create(name="Overage", idempotency_key=key("prod"))
    return stripe.Price.create(
        product=product.id, currency="usd", unit_amount=unit_amount, idempotency_key=key("pr")
    )


def _flow() -> None:
    customer, _pm = make_customer()
    draft = _draft(customer)
    _item(customer, draft, amount=1250, currency="usd")
    _item(customer, draft, quantity=3, pricing={"price": _one_time_price(400).id})
    _item(customer, draft, quantity=1000, unit_amount_decimal="0.125", currency="usd")
    _item(customer, draft, amount=-200, currency="usd", description="Credit")
    stripe.InvoiceItem.list(invoice=draft.id)
    stripe.Invoice.list_lines(draft.id)
    stripe.Invoice.finalize_invoice(draft.id, idempotency_key=key("fin"))
    paid = stripe.Invoice.pay(draft.id, idempotency_key=key("pay"), expand=["payments"])
    stripe.Invoice.retrieve(paid.id)
    charge_id = invoice_charge_id(paid.id)
    stripe.Refund.create(charge=charge_id, idempotency_key=key("re"))
    stripe.Charge.retrieve(charge_id)

    # A zero invoice, a deleted item, a pending item swept into a renewal.
    zero = _draft(customer)
    _item(customer, zero, amount=0, currency="usd")
    deleted = _item(customer, zero, amount=10, currency="usd")
    stripe.InvoiceItem.delete(deleted.id)
    stripe.Invoice.finalize_invoice(zero.id, idempotency_key=key("fin"))

    clock = make_clock(JAN_1)
    clocked, clocked_pm = clock_customer(clock)
    subscribe(clocked, clocked_pm, make_price(unit_amount=3000))
    pending = _item(clocked, amount=700, currency="usd")
    stripe.InvoiceItem.modify(pending.id, description="Overage", metadata={"n": "1"})
    stripe.InvoiceItem.list(customer=clocked.id, pending=True)
    advance(clock, FEB_1 + 3600)
    stripe.InvoiceItem.list(customer=clocked.id)
    stripe.Invoice.list(customer=clocked.id)


def test_invoice_items_conform_to_the_pinned_api_version(recorder):
    _flow()
    events = [e for e in all_events() if e["data"]["object"].get("object") in OURS]
    bodies = [o for _m, _u, status, body in recorder.bodies if status < 400 for o in _ours(body)]
    found = conformance.all_violations([*bodies, *events])
    report = {kind: sorted(set(problems)) for kind, problems in found.items()}
    assert report == {}, json.dumps(report, indent=1)

    assert {b["object"] for b in bodies} == OURS
    assert {
        "invoiceitem.created", "invoiceitem.deleted", "invoice.created", "invoice.finalized",
        "invoice.paid", "invoice_payment.paid", "charge.refunded",
    } <= {e["type"] for e in events}  # fmt: skip


# --- behaviour ----------------------------------------------------------------------------
def test_items_on_a_draft_make_its_lines_and_totals(stripe_fake):
    customer, _pm = make_customer()
    draft = _draft(customer)
    assert (draft.status, draft.currency, draft.billing_reason) == ("draft", "usd", "manual")
    assert (draft.parent, draft.auto_advance, draft.total) == (None, False, 0)

    fixed = _item(customer, draft, amount=1250, currency="usd")
    price = _one_time_price(400)
    priced = _item(customer, draft, quantity=3, pricing={"price": price.id})
    metered = _item(customer, draft, quantity=1001, unit_amount_decimal="0.125", currency="usd")
    credit = _item(customer, draft, amount=-200, currency="usd")

    assert (fixed.invoice, fixed.amount, fixed.quantity, fixed.discountable) == (
        draft.id, 1250, 1, True,
    )  # fmt: skip
    assert (fixed.period.start, fixed.period.end, fixed.parent) == (JAN_1, FEB_1, None)
    assert fixed.pricing.price_details is None
    assert (priced.amount, priced.description) == (1200, "Overage")
    assert priced.pricing.price_details.price == price.id
    assert priced.pricing.unit_amount_decimal == Decimal("400")  # the client decodes it
    assert (metered.amount, metered.pricing.unit_amount_decimal) == (125, Decimal("0.125"))
    assert (credit.amount, credit.discountable) == (-200, False)

    invoice = stripe.Invoice.retrieve(draft.id)
    assert (invoice.subtotal, invoice.total, invoice.amount_due) == (2375, 2375, 2375)
    lines = stripe.Invoice.list_lines(draft.id).data
    assert [line.amount for line in lines] == [1250, 1200, 125, -200]
    assert {line.parent.type for line in lines} == {"invoice_item_details"}
    assert [line.parent.invoice_item_details.invoice_item for line in lines] == [
        fixed.id, priced.id, metered.id, credit.id,
    ]  # fmt: skip
    assert lines[0].metadata.to_dict() == {"meter": "api_calls"}
    assert lines[1].pricing.price_details.price == price.id

    stripe.InvoiceItem.modify(fixed.id, amount=1000)
    assert stripe.Invoice.retrieve(draft.id).total == 2125
    stripe.InvoiceItem.delete(credit.id)
    assert stripe.Invoice.retrieve(draft.id).total == 2325
    assert len(stripe.Invoice.list_lines(draft.id).data) == 3
    assert {i.id for i in stripe.InvoiceItem.list(invoice=draft.id).data} == {
        fixed.id, priced.id, metered.id,
    }  # fmt: skip


def test_finalize_and_pay_charge_the_total_and_a_refund_returns_it(stripe_fake):
    customer, pm = make_customer()
    draft = _draft(customer)
    _item(customer, draft, amount=1250, currency="usd")
    _item(customer, draft, amount=750, currency="usd")
    before = {e["id"] for e in all_events()}

    finalized = stripe.Invoice.finalize_invoice(draft.id, idempotency_key=key("fin"))
    assert (finalized.status, finalized.amount_due, finalized.auto_advance) == ("open", 2000, False)
    assert finalized.number and finalized.status_transitions.finalized_at
    paid = stripe.Invoice.pay(draft.id, idempotency_key=key("pay"))
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 2000, 0)

    [payment] = stripe.InvoicePayment.list(invoice=draft.id).data
    assert (payment.status, payment.amount_paid) == ("paid", 2000)
    new = [e for e in all_events() if e["id"] not in before]
    types = [e["type"] for e in new]
    assert types.index("invoice.finalized") < types.index("invoice_payment.paid")
    assert types.index("invoice_payment.paid") < types.index("invoice.paid")
    [paid_event] = [e for e in new if e["type"] == "invoice.paid"]
    assert paid_event["data"]["object"]["id"] == draft.id
    [payment_event] = [e for e in new if e["type"] == "invoice_payment.paid"]
    assert payment_event["data"]["object"]["id"] == payment.id

    charge_id = invoice_charge_id(draft.id)
    charge = stripe.Charge.retrieve(charge_id)
    assert (charge.amount, charge.customer, charge.payment_method) == (2000, customer.id, pm.id)
    refund = stripe.Refund.create(charge=charge_id, idempotency_key=key("re"))
    assert (refund.amount, refund.status) == (2000, "succeeded")
    assert stripe.Charge.retrieve(charge_id).amount_refunded == 2000

    with pytest.raises(stripe.InvalidRequestError, match="already finalized"):
        stripe.Invoice.finalize_invoice(draft.id)


def test_a_zero_invoice_is_paid_when_finalized(stripe_fake):
    customer, _pm = make_customer()
    draft = _draft(customer)
    _item(customer, draft, amount=500, currency="usd")
    _item(customer, draft, amount=-500, currency="usd")
    before = {e["id"] for e in all_events()}

    invoice = stripe.Invoice.finalize_invoice(draft.id)

    assert (invoice.status, invoice.amount_due, invoice.amount_paid) == ("paid", 0, 0)
    assert invoice.status_transitions.paid_at is not None
    assert stripe.InvoicePayment.list(invoice=draft.id).data == []
    types = [e["type"] for e in all_events() if e["id"] not in before]
    assert types.index("invoice.finalized") < types.index("invoice.paid")


def test_stripe_errors_for_invoice_items(stripe_fake):
    customer, _pm = make_customer()
    draft = _draft(customer)
    price = _one_time_price(400)

    with pytest.raises(stripe.InvalidRequestError) as other_currency:
        _item(customer, draft, amount=100, currency="eur")
    assert (other_currency.value.http_status, other_currency.value.param) == (400, "currency")
    assert "must match the currency of the invoice" in str(other_currency.value.user_message)

    with pytest.raises(stripe.InvalidRequestError) as both:
        _item(customer, draft, amount=100, currency="usd", pricing={"price": price.id})
    assert (both.value.code, both.value.param) == ("parameters_exclusive", "pricing")
    assert both.value.user_message == (
        "You may only specify one of these parameters: amount, pricing."
    )

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        _item(customer, draft, amount=100, currency="usd", unit_amount=5)
    assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "unit_amount")

    with pytest.raises(stripe.InvalidRequestError) as no_invoice:
        _item(customer, "in_nope", amount=100, currency="usd")
    assert (no_invoice.value.code, no_invoice.value.param) == ("resource_missing", "invoice")

    kept = _item(customer, draft, amount=100, currency="usd")
    stripe.Invoice.finalize_invoice(draft.id)
    with pytest.raises(stripe.InvalidRequestError) as finalized:
        _item(customer, draft, amount=100, currency="usd")
    assert (finalized.value.http_status, finalized.value.code) == (400, "invoice_not_editable")
    with pytest.raises(stripe.InvalidRequestError, match="draft"):
        stripe.InvoiceItem.modify(kept.id, amount=5)
    with pytest.raises(stripe.InvalidRequestError, match="draft"):
        stripe.InvoiceItem.delete(kept.id)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe.InvoiceItem.retrieve("ii_nope")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    assert stripe.Invoice.retrieve(draft.id).total == 100


def test_an_idempotent_retry_replays_the_same_item_and_adds_no_line(stripe_fake):
    customer, _pm = make_customer()
    draft = _draft(customer)
    retry = key("ii")
    params = {"customer": customer.id, "invoice": draft.id, "amount": 900, "currency": "usd"}

    first = stripe.InvoiceItem.create(idempotency_key=retry, **params)
    again = stripe.InvoiceItem.create(idempotency_key=retry, **params)

    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert [line.amount for line in stripe.Invoice.list_lines(draft.id).data] == [900]
    created = [
        e for e in all_events()
        if e["type"] == "invoiceitem.created" and e["data"]["object"]["id"] == first.id
    ]  # fmt: skip
    assert len(created) == 1


def test_pending_items_wait_for_an_invoice_that_includes_them(stripe_fake):
    customer, _pm = make_customer()
    pending = _item(customer, amount=300, currency="usd")
    assert pending.invoice is None

    excluded = _draft(customer)
    assert stripe.Invoice.list_lines(excluded.id).data == []
    assert [i.id for i in stripe.InvoiceItem.list(customer=customer.id, pending=True).data] == [
        pending.id
    ]

    included = stripe.Invoice.create(
        customer=customer.id, pending_invoice_items_behavior="include", idempotency_key=key("i")
    )
    assert included.total == 300
    assert stripe.InvoiceItem.retrieve(pending.id).invoice == included.id
    assert stripe.InvoiceItem.list(customer=customer.id, pending=True).data == []
    assert [i.id for i in stripe.InvoiceItem.list(customer=customer.id).data] == [pending.id]


def test_pending_items_are_swept_into_the_subscription_renewal(stripe_fake):
    clock = make_clock(JAN_1)
    customer, pm = clock_customer(clock)
    sub = subscribe(customer, pm, make_price(unit_amount=3000))
    pending = _item(customer, amount=700, currency="usd")
    assert pending.date == JAN_1 and pending.test_clock == clock.id

    advance(clock, FEB_1 + 3600)

    item = stripe.InvoiceItem.retrieve(pending.id)
    renewal = stripe.Invoice.retrieve(item.invoice)
    assert renewal.parent.subscription_details.subscription == sub.id
    assert (renewal.billing_reason, renewal.status, renewal.amount_paid) == (
        "subscription_cycle", "paid", 3700,
    )  # fmt: skip
    kinds = sorted(line.parent.type for line in stripe.Invoice.list_lines(renewal.id).data)
    assert kinds == ["invoice_item_details", "subscription_item_details"]


def test_list_filters_and_an_update_that_reprices_the_line(stripe_fake):
    clock = make_clock(JAN_1)
    customer, _pm = clock_customer(clock)
    draft = _draft(customer)
    early = _item(customer, draft, quantity=10, unit_amount_decimal="2.5", currency="usd")
    advance(clock, JAN_1 + 3600)
    late = _item(customer, amount=100, currency="usd")

    def ids(**filters: Any) -> list[str]:
        return [i.id for i in stripe.InvoiceItem.list(customer=customer.id, **filters).data]

    assert ids() == [late.id, early.id]  # newest first
    assert ids(created={"gte": JAN_1 + 3600}) == [late.id]
    assert ids(created={"lt": JAN_1 + 3600}) == [early.id]
    assert ids(pending=False) == [early.id]
    assert ids(invoice=draft.id) == [early.id]
    assert ids(limit=1) == [late.id]
    assert ids(starting_after=late.id) == [early.id]
    assert ids(ending_before=early.id) == [late.id]

    updated = stripe.InvoiceItem.modify(early.id, quantity=4, metadata={"meter": ""})
    assert (updated.amount, updated.quantity, updated.metadata.to_dict()) == (10, 4, {})
    [line] = stripe.Invoice.list_lines(draft.id).data
    assert (line.amount, line.quantity) == (10, 4)
    assert stripe.Invoice.retrieve(draft.id).total == 10


def test_one_customer_has_invoices_in_several_currencies_and_pays_with_a_card_named(
    stripe_fake,
):
    """Stripe's multi-currency customers: each manual invoice in its own ``currency``, its
    items in that currency; ``pay`` takes the customer's ``payment_method`` to charge."""
    customer, _ = make_customer(card="pm_card_chargeCustomerFail")
    invoices = {}
    for currency, amount in (("usd", 1250), ("eur", 300)):
        draft = stripe.Invoice.create(
            customer=customer.id,
            currency=currency,
            auto_advance=False,
            pending_invoice_items_behavior="exclude",
            idempotency_key=key("inv"),
        )
        _item(customer, draft, amount=amount, currency=currency)
        invoices[currency] = stripe.Invoice.finalize_invoice(draft.id, idempotency_key=key("fin"))
        assert (invoices[currency].currency, invoices[currency].amount_due) == (currency, amount)
    other = stripe.Invoice.create(customer=customer.id, currency="eur", idempotency_key=key("inv"))
    with pytest.raises(stripe.InvalidRequestError, match="must match the currency"):
        _item(customer, other, amount=100, currency="usd")
    with pytest.raises(stripe.CardError):  # the customer's default card declines
        stripe.Invoice.pay(invoices["usd"].id, idempotency_key=key("pay"))

    good = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    _, someone_elses = make_customer(email="other@example.com")
    with pytest.raises(stripe.InvalidRequestError, match="does not belong to the Customer"):
        stripe.Invoice.pay(
            invoices["usd"].id, payment_method=someone_elses.id, idempotency_key=key("pay")
        )
    for currency, amount in (("usd", 1250), ("eur", 300)):
        paid = stripe.Invoice.pay(
            invoices[currency].id, payment_method=good.id, idempotency_key=key("pay")
        )
        assert (paid.status, paid.currency, paid.amount_paid) == ("paid", currency, amount)
        charge = stripe.Charge.retrieve(invoice_charge_id(paid.id))
        assert (charge.currency, charge.amount, charge.payment_method) == (
            currency, amount, good.id,
        )  # fmt: skip
