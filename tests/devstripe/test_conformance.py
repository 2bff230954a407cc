"""The fake Stripe is held to Stripe's own definition, not to our code.

A full flow runs through the real ``stripe`` client (catalog, customer, payment methods, a
multi-item subscription, invoices and their payments, refunds, a dispute won and one lost,
balance transactions, payouts, test clocks, Connect accounts and transfers, webhook
endpoints, events); every response body the client receives is recorded at the HTTP layer
and checked, nested objects included, against the installed stripe-python's resource classes
for the API version it requests (``conformance.py``).
"""

from __future__ import annotations

import json
import uuid

import pytest
import stripe

from tests.devstripe import conformance
from tests.devstripe.clock_helpers import FEB_1, JAN_1, advance, make_clock
from tests.devstripe.recording import all_events
from tests.stripe_harness import connected_account

pytestmark = pytest.mark.django_db


def _key() -> str:
    return "conformance-" + uuid.uuid4().hex


def _run_flow() -> None:
    # Catalog: a per-unit price, a graduated one, a yearly one.
    product = stripe.Product.create(name="Conformance", idempotency_key=_key())
    seat = stripe.Price.create(
        product=product.id, currency="usd", unit_amount=1500,
        recurring={"interval": "month"}, lookup_key="conf_seat", idempotency_key=_key(),
    )  # fmt: skip
    tiered = stripe.Price.create(
        product=product.id, currency="usd", billing_scheme="tiered", tiers_mode="graduated",
        tiers=[{"up_to": 5, "unit_amount": 1000}, {"up_to": "inf", "unit_amount": 800}],
        recurring={"interval": "month"}, expand=["tiers"], idempotency_key=_key(),
    )  # fmt: skip
    stripe.Price.retrieve(tiered.id, expand=["tiers", "product"])
    stripe.Price.list(product=product.id, active=True)
    stripe.Product.modify(product.id, metadata={"tier": "pro"})
    stripe.Product.list(limit=10)

    # Customer and payment methods.
    customer = stripe.Customer.create(email="conformance@example.com", idempotency_key=_key())
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    stripe.Customer.retrieve(customer.id)
    stripe.Customer.list_payment_methods(customer.id)
    stripe.PaymentMethod.list(customer=customer.id, type="card")

    # A multi-item subscription, its items, invoices and their payments.
    sub = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": seat.id, "quantity": 2}, {"price": tiered.id, "quantity": 7}],
        default_payment_method=pm.id, expand=["latest_invoice"], idempotency_key=_key(),
    )  # fmt: skip
    stripe.SubscriptionItem.list(subscription=sub.id)
    item = sub["items"]["data"][0]
    stripe.SubscriptionItem.retrieve(item.id)
    stripe.Subscription.modify(
        sub.id, items=[{"id": item.id, "quantity": 3}], proration_behavior="create_prorations",
        idempotency_key=_key(),
    )  # fmt: skip
    invoices = stripe.Invoice.list(customer=customer.id, expand=["data.payments"])
    invoice_id = invoices.data[0].id
    stripe.Invoice.retrieve(invoice_id, expand=["payments", "lines.data.discounts"])
    stripe.Invoice.list_lines(invoice_id)
    payments = stripe.InvoicePayment.list(invoice=invoice_id)
    payment_intent = payments.data[0].payment.payment_intent
    stripe.InvoicePayment.list(payment={"type": "payment_intent", "payment_intent": payment_intent})
    stripe.InvoicePayment.retrieve(payments.data[0].id)
    intent = stripe.PaymentIntent.retrieve(payment_intent)
    stripe.Charge.retrieve(intent.latest_charge, expand=["balance_transaction"])
    stripe.Charge.list(customer=customer.id)

    # Refunds: partial then the rest.
    stripe.Refund.create(charge=intent.latest_charge, amount=500, idempotency_key=_key())
    stripe.Refund.create(payment_intent=intent.id, idempotency_key=_key())
    stripe.Refund.list(charge=intent.latest_charge)

    # A card that attaches but declines when charged (Stripe's 4000000000000341): an open
    # invoice and a payment intent carrying the error.
    declining = stripe.Customer.create(email="declines@example.com", idempotency_key=_key())
    bad = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=declining.id)
    with pytest.raises(stripe.CardError):
        stripe.Subscription.create(
            customer=declining.id, items=[{"price": seat.id}], default_payment_method=bad.id,
            payment_behavior="error_if_incomplete", idempotency_key=_key(),
        )  # fmt: skip

    # Disputes: one won, one lost.
    for evidence in ("winning_evidence", "losing_evidence"):
        disputer = stripe.Customer.create(email=f"{evidence}@example.com", idempotency_key=_key())
        card = stripe.PaymentMethod.attach("pm_card_createDispute", customer=disputer.id)
        disputed = stripe.Subscription.create(
            customer=disputer.id, items=[{"price": seat.id}], default_payment_method=card.id,
            idempotency_key=_key(),
        )  # fmt: skip
        [paid] = stripe.InvoicePayment.list(invoice=disputed.latest_invoice).data
        charge = stripe.PaymentIntent.retrieve(paid.payment.payment_intent).latest_charge
        [dispute] = stripe.Dispute.list(charge=charge).data
        stripe.Dispute.modify(dispute.id, evidence={"uncategorized_text": evidence})
        stripe.Dispute.retrieve(dispute.id)

    # Balance transactions and payouts.
    stripe.BalanceTransaction.list(limit=100)
    payout = stripe.Payout.create(amount=1000, currency="usd", idempotency_key=_key())
    stripe.Payout.retrieve(payout.id, expand=["destination"])
    stripe.Payout.list(limit=10)
    stripe.Balance.retrieve()

    # Test clocks: a renewal on a frozen clock.
    clock = make_clock(JAN_1)
    clocked = stripe.Customer.create(
        email="clock@example.com", test_clock=clock.id, idempotency_key=_key()
    )
    clocked_pm = stripe.PaymentMethod.attach("pm_card_visa", customer=clocked.id)
    stripe.Subscription.create(
        customer=clocked.id, items=[{"price": seat.id}], default_payment_method=clocked_pm.id,
        idempotency_key=_key(),
    )  # fmt: skip
    advance(clock, FEB_1 + 3600)
    stripe.test_helpers.TestClock.retrieve(clock.id)
    stripe.test_helpers.TestClock.list()

    # Connect: an Express account and a transfer to it.
    account = connected_account(email="seller@example.com")
    stripe.Account.retrieve(account.id)
    stripe.Transfer.create(
        amount=300, currency="usd", destination=account.id, idempotency_key=_key()
    )
    stripe.Transfer.list(destination=account.id)

    # Webhook endpoints.
    endpoint = stripe.WebhookEndpoint.create(
        url="https://example.com/stripe/webhook/", enabled_events=["*"],
        api_version=stripe.api_version, idempotency_key=_key(),
    )  # fmt: skip
    stripe.WebhookEndpoint.retrieve(endpoint.id)
    stripe.WebhookEndpoint.list()

    # Cancel the first subscription.
    stripe.Subscription.cancel(sub.id)


def test_every_object_the_fake_returns_conforms_to_the_pinned_api_version(recorder):
    _run_flow()
    events = all_events()

    bodies = [body for _m, _u, status, body in recorder.bodies if status < 400 and body]
    found = conformance.all_violations([*bodies, *events])
    report = {kind: sorted(set(problems)) for kind, problems in found.items()}
    assert report == {}, json.dumps(report, indent=1)

    pages = [item for b in bodies if b.get("object") == "list" for item in b["data"]]
    kinds = {obj.get("object") for obj in [*bodies, *pages]}
    kinds |= {e["data"]["object"].get("object") for e in events}
    assert {
        "product", "price", "customer", "payment_method", "subscription", "subscription_item",
        "invoice", "line_item", "invoice_payment", "payment_intent", "charge", "refund",
        "dispute", "balance_transaction", "payout", "balance", "test_helpers.test_clock",
        "account", "transfer", "webhook_endpoint", "event", "list",
    } <= kinds, kinds  # fmt: skip


def test_events_carry_the_api_version_we_speak(recorder):
    _run_flow()
    versions = {event["api_version"] for event in all_events()}
    assert versions == {stripe.api_version}


def test_error_bodies_are_stripes(recorder):
    """Errors carry type, code, param and a specific message, as Stripe sends them."""
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe.Customer.retrieve("cus_doesnotexist")
    error = missing.value.error
    assert (error.type, error.code, error.param) == (
        "invalid_request_error",
        "resource_missing",
        "id",
    )
    assert "cus_doesnotexist" in error.message

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        stripe.Customer.create(favourite_colour="blue")
    error = unknown.value.error
    assert (error.code, error.param) == ("parameter_unknown", "favourite_colour")

    with pytest.raises(stripe.InvalidRequestError) as required:
        stripe.Price.create(unit_amount=100, product="prod_x")
    error = required.value.error
    assert (error.code, error.param) == ("parameter_missing", "currency")

    customer = stripe.Customer.create(email="declined@example.com")
    with pytest.raises(stripe.CardError) as declined:
        stripe.PaymentMethod.attach("pm_card_chargeDeclined", customer=customer.id)
        stripe.PaymentIntent.create(
            amount=100, currency="usd", customer=customer.id,
            payment_method="pm_card_chargeDeclined", confirm=True,
        )  # fmt: skip
    error = declined.value.error
    assert (error.type, error.code, error.decline_code) == (
        "card_error", "card_declined", "generic_decline",
    )  # fmt: skip
