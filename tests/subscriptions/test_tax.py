"""Tax collected on invoices goes to ``liability.sales_tax_payable``; refunds reverse it pro rata.

Tax rates are created with the stripe client on the fake Stripe (exclusive and inclusive), its
``invoice.paid`` is processed through dj-stripe; the rounding of partial reversals is checked
with hypothesis on the services.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from affiliates.models import Commission, Referral
from ledger.chart import SystemAccount
from ledger.models import Transaction
from ledger.selectors import trial_balance
from ledger.services import Line, ledger_post, system_account
from subscriptions.services.invoice_payments import invoice_payment_record
from subscriptions.services.invoice_postings import (
    INVOICE_PAID_SOURCE,
    REFUND_SOURCE,
    charge_refund_record,
    invoice_paid_key,
    invoice_paid_record,
)
from tests.affiliates.factories import AffiliateFactory, ProgramFactory
from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import EventFeed, key, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db

CLEARING = SystemAccount.STRIPE_CLEARING.value
REVENUE = SystemAccount.REVENUE_SUBSCRIPTIONS.value
TAX = SystemAccount.SALES_TAX_PAYABLE.value
NOW = datetime(2026, 3, 1, tzinfo=UTC)
FEE_1199 = 65  # Stripe's fee on a 1199 card charge: 2.9 % = 34.771 -> 35, + 30


def _lines(posting: Transaction) -> dict[str, int]:
    return {e.account.code: e.amount for e in posting.entries.select_related("account")}


def _tax_rate(percentage: str, *, inclusive: bool) -> stripe.TaxRate:
    return stripe.TaxRate.create(
        display_name="VAT",
        percentage=percentage,
        inclusive=inclusive,
        idempotency_key=key("txr"),
    )


def _paid_posting(invoice_id: str) -> Transaction:
    return Transaction.objects.get(
        source=INVOICE_PAID_SOURCE, idempotency_key=invoice_paid_key(invoice_id)
    )


def test_exclusive_tax_is_booked_to_the_tax_liability(stripe_fake):
    rate = _tax_rate("20", inclusive=False)
    customer, pm = make_customer()
    sub = subscribe(customer, pm, make_price(unit_amount=999), default_tax_rates=[rate.id])

    EventFeed().process_new()

    invoice = stripe.Invoice.retrieve(sub.latest_invoice)
    assert (invoice.subtotal, invoice.amount_paid) == (999, 1199)
    # 999 * 20 % = 199.8 -> 200, on top of the price.
    assert _lines(_paid_posting(invoice.id)) == {CLEARING: 1199, REVENUE: -999, TAX: -200}
    assert set(trial_balance().values()) == {0}


def test_inclusive_tax_is_inside_the_price_and_booked_out_of_revenue(stripe_fake):
    rate = _tax_rate("20", inclusive=True)
    customer, pm = make_customer()
    price = make_price(unit_amount=1200)
    sub = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": price.id, "tax_rates": [rate.id]}],
        default_payment_method=pm.id,
        idempotency_key=key("sub"),
    )

    EventFeed().process_new()

    invoice = stripe.Invoice.retrieve(sub.latest_invoice)
    assert invoice.amount_paid == 1200  # 1200 * 20 / 120 = 200 of it is tax
    assert _lines(_paid_posting(invoice.id)) == {CLEARING: 1200, REVENUE: -1000, TAX: -200}


def test_a_partial_refund_reverses_revenue_and_tax_pro_rata_and_the_rest_clears_both(
    stripe_fake,
):
    rate = _tax_rate("20", inclusive=False)
    customer, pm = make_customer()
    sub = subscribe(customer, pm, make_price(unit_amount=999), default_tax_rates=[rate.id])
    feed = EventFeed()
    feed.process_new()
    charge_id = invoice_charge_id(sub.latest_invoice)

    stripe.Refund.create(charge=charge_id, amount=600, idempotency_key=key("re"))
    feed.process_new()
    [first] = Transaction.objects.filter(source=REFUND_SOURCE)
    # 600 of 1199: revenue 499.92 and tax 100.08; the unit left over goes to the larger remainder.
    assert _lines(first) == {CLEARING: -600, REVENUE: 500, TAX: 100}

    stripe.Refund.create(charge=charge_id, idempotency_key=key("re"))
    feed.process_new()
    second = Transaction.objects.filter(source=REFUND_SOURCE).exclude(pk=first.pk).get()
    assert _lines(second) == {CLEARING: -599, REVENUE: 499, TAX: 100}
    for code in (REVENUE, TAX):
        assert sum(e.amount for e in system_account(code).entries.all()) == 0
    # Refunded in full; Stripe keeps its processing fee, booked out of clearing.
    clearing = sum(e.amount for e in system_account(CLEARING).entries.all())
    assert clearing == 1199 - FEE_1199 - 600 - 599


def test_commissions_are_earned_on_the_amount_net_of_tax(stripe_fake):
    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate="10"))
    rate = _tax_rate("20", inclusive=False)
    customer, pm = make_customer(email="taxed@customer.test")
    Referral.objects.create(
        affiliate=affiliate,
        stripe_customer_id=customer.id,
        source=Referral.Source.CODE,
        referred_at=datetime.now(UTC),
    )
    subscribe(customer, pm, make_price(unit_amount=5000), default_tax_rates=[rate.id])

    EventFeed().process_new()

    commission = Commission.objects.get()
    assert (commission.base_amount, commission.amount) == (5000, 500)  # not 6000 / 600


def test_an_invoice_booked_before_tax_went_to_the_ledger_keeps_its_posting():
    invoice_id = "in_booked_before_tax"
    old = ledger_post(
        idempotency_key=invoice_paid_key(invoice_id),
        source=INVOICE_PAID_SOURCE,
        lines=[
            Line.debit(system_account(SystemAccount.STRIPE_CLEARING), 1000, "usd"),
            Line.credit(system_account(SystemAccount.REVENUE_SUBSCRIPTIONS), 1000, "usd"),
        ],
    )

    again = invoice_paid_record(invoice=_invoice(invoice_id, 1200, 200), occurred_at=NOW)

    assert again.pk == old.pk
    assert Transaction.objects.filter(source=INVOICE_PAID_SOURCE).count() == 1


def test_tax_as_large_as_the_payment_books_no_revenue_line():
    posting = invoice_paid_record(invoice=_invoice("in_all_tax", 300, 500), occurred_at=NOW)

    assert _lines(posting) == {CLEARING: 300, TAX: -300}


def _invoice(invoice_id: str, paid: int, tax: int) -> dict:
    return {
        "id": invoice_id,
        "customer": "cus_tax",
        "currency": "usd",
        "amount_paid": paid,
        "total_taxes": [{"amount": tax, "tax_behavior": "exclusive"}],
    }


def _invoice_payment(invoice_id: str, paid: int) -> dict:
    """The invoice payment linking the invoice to its payment intent, as Stripe sends it."""
    return {
        "id": f"inpay_{invoice_id}",
        "invoice": invoice_id,
        "payment": {"type": "payment_intent", "payment_intent": f"pi_{invoice_id}"},
        "amount_paid": paid,
        "currency": "usd",
        "status": "paid",
        "created": int(NOW.timestamp()),
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    price=st.integers(min_value=1, max_value=10**9),
    tax_rate=st.integers(min_value=0, max_value=2500),  # basis points: 0 % .. 25 %
    weights=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=5),
)
def test_refund_parts_add_up_and_reverse_tax_in_proportion(price, tax_rate, weights):
    tax = (price * tax_rate + 5000) // 10000
    paid = price + tax
    invoice_id = f"in_{uuid.uuid4().hex}"
    invoice_paid_record(invoice=_invoice(invoice_id, paid, tax), occurred_at=NOW)
    invoice_payment_record(invoice_payment=_invoice_payment(invoice_id, paid))
    # Split the whole payment into refunds by weight (the last takes the remainder).
    amounts = [paid * w // sum(weights) for w in weights[:-1]]
    amounts.append(paid - sum(amounts))
    refunds = []
    left = {REVENUE: -price, TAX: -tax}
    for index, amount in enumerate(a for a in amounts if a > 0):
        refunds.append({"id": f"re_{invoice_id}_{index}", "amount": amount, "status": "succeeded"})
        charge = {
            "id": f"ch_{invoice_id}",
            "payment_intent": f"pi_{invoice_id}",
            "amount": paid,
            "amount_refunded": sum(r["amount"] for r in refunds),
            "refunds": {"data": [{**r, "created": i} for i, r in enumerate(refunds)]},
        }
        # Earlier refunds are returned as booked; the last one is this refund's reversal.
        lines = _lines(charge_refund_record(charge=charge, occurred_at=NOW)[-1])

        assert lines[CLEARING] == -amount
        assert lines.get(REVENUE, 0) + lines.get(TAX, 0) == amount
        # Each part is the exact pro rata share of what was left, rounded down or up.
        gross_left = -(left[REVENUE] + left[TAX])
        for code in (REVENUE, TAX):
            exact_times_gross = amount * -left[code]
            assert abs(lines.get(code, 0) * gross_left - exact_times_gross) < gross_left
            left[code] += lines.get(code, 0)

    assert left == {REVENUE: 0, TAX: 0}
