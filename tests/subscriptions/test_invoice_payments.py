"""The invoice payment index: which invoice a payment intent paid, without a Stripe call per
refund or dispute once it is known; and dunning reads the payment intent's last error."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from django.core.cache import cache
from djstripe import models as djm

from ledger.models import Transaction
from subscriptions.models import DunningCase, InvoicePayment, WebhookEvent
from subscriptions.services import inbox
from subscriptions.services.invoice_postings import REFUND_SOURCE
from subscriptions.tasks import webhook_event_process_on_commit
from tests.stripe_paths import invoice_charge_id, invoice_payment_intent_id
from tests.subscriptions.effects_helpers import EventFeed, key, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every InvoicePayment.list call our code makes."""
    calls: list[dict[str, Any]] = []
    real = stripe.InvoicePayment.list

    def spy(**params: Any) -> Any:
        calls.append(params)
        return real(**params)

    monkeypatch.setattr(stripe.InvoicePayment, "list", spy)
    return calls


def _refund(charge_id: str, amount: int) -> None:
    stripe.Refund.create(charge=charge_id, amount=amount, idempotency_key=key("re"))


def test_invoice_payment_paid_fills_the_index_and_refunds_read_it(stripe_fake, lookups):
    feed = EventFeed()
    customer, pm = make_customer()
    sub = subscribe(customer, pm, make_price(unit_amount=3000))
    feed.process_new()

    row = InvoicePayment.objects.get()
    [payment] = stripe.InvoicePayment.list(invoice=sub.latest_invoice).data
    assert (row.stripe_invoice_payment_id, row.stripe_invoice_id) == (
        payment.id,
        sub.latest_invoice,
    )
    assert row.stripe_payment_intent_id == invoice_payment_intent_id(sub.latest_invoice)
    assert (row.status, row.amount, row.currency) == ("paid", 3000, "usd")

    charge_id = invoice_charge_id(sub.latest_invoice)
    lookups.clear()
    _refund(charge_id, 1000)
    _refund(charge_id, 500)
    feed.process_new()

    assert lookups == []  # the link was known: no Stripe lookup per refund
    refunds = Transaction.objects.filter(source=REFUND_SOURCE)
    assert sorted(-e.amount for r in refunds for e in r.entries.filter(amount__lt=0)) == [500, 1000]
    assert InvoicePayment.objects.get().stripe_charge_id == charge_id


def test_an_unknown_payment_intent_is_looked_up_once_and_remembered(stripe_fake, lookups):
    feed = EventFeed()
    customer, pm = make_customer()
    sub = subscribe(customer, pm, make_price(unit_amount=2000))
    # invoice_payment.paid never arrives (lost, or not processed yet)
    feed.process_new(types={"invoice.created", "invoice.finalized", "invoice.paid"})
    assert not InvoicePayment.objects.exists()

    charge_id = invoice_charge_id(sub.latest_invoice)
    pi_id = invoice_payment_intent_id(sub.latest_invoice)
    lookups.clear()
    _refund(charge_id, 300)
    feed.process_new(types={"charge.refunded"})
    _refund(charge_id, 200)
    feed.process_new(types={"charge.refunded"})

    assert lookups == [
        {
            "payment": {"type": "payment_intent", "payment_intent": pi_id},
            "api_key": stripe_fake.api_key,
        }
    ]
    row = InvoicePayment.objects.get()
    assert (row.stripe_invoice_id, row.stripe_payment_intent_id, row.stripe_charge_id) == (
        sub.latest_invoice,
        pi_id,
        charge_id,
    )
    assert Transaction.objects.filter(source=REFUND_SOURCE).count() == 2


def test_the_invoice_payment_event_is_idempotent_and_never_goes_back(stripe_fake):
    feed = EventFeed()
    customer, pm = make_customer()
    subscribe(customer, pm, make_price())
    events = feed.process_new()
    [paid] = [e for e in events if e["type"] == "invoice_payment.paid"]
    older = {**paid, "id": paid["id"] + "_older"}
    older["data"] = {"object": {**paid["data"]["object"], "status": "open", "amount_paid": None}}

    djm.Event.process(older)

    row = InvoicePayment.objects.get()
    assert (row.status, row.amount) == ("paid", 1000)


def test_reconciliation_replays_a_missed_invoice_payment_event(
    stripe_fake, lookups, django_capture_on_commit_callbacks, celery_eager
):
    cache.delete(inbox.RECONCILE_WATERMARK_KEY)
    customer, pm = make_customer()
    sub = subscribe(customer, pm, make_price(unit_amount=2500))  # no webhook was delivered

    with django_capture_on_commit_callbacks(execute=True):
        inbox.stripe_reconcile(enqueue=webhook_event_process_on_commit)

    row = WebhookEvent.objects.get(type="invoice_payment.paid")
    assert row.status == WebhookEvent.Status.SUCCEEDED
    link = InvoicePayment.objects.get()
    assert (link.stripe_invoice_id, link.status) == (sub.latest_invoice, "paid")
    assert lookups == []


def test_dunning_records_the_payment_intents_last_error(stripe_fake):
    feed = EventFeed()
    customer, declined = make_customer(card="pm_card_chargeCustomerFail")
    sub = subscribe(customer, declined, make_price(unit_amount=1200))
    feed.process_new()

    case = DunningCase.objects.get(stripe_invoice_id=sub.latest_invoice)
    intent = stripe.PaymentIntent.retrieve(invoice_payment_intent_id(sub.latest_invoice))
    assert (case.last_failure_code, case.last_decline_code, case.last_failure_message) == (
        "card_declined",
        "generic_decline",
        "Your card was declined.",
    )
    assert intent.last_payment_error.message == case.last_failure_message
