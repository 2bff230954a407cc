"""Stripe's fees land in the stream of the payment they were taken on, end to end on the fake
Stripe (card fee 2.9 % + 30): the events are processed through dj-stripe as the webhook inbox
does, so the fee's balance transaction, charge and payment intent are in the mirror, and the
report follows them to the invoice's revenue account or the marketplace order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics import revenue
from ledger.chart import SystemAccount
from ledger.models import Entry
from marketplace.models import Order
from tests.marketplace.factories_orders import order_in
from tests.subscriptions.effects_helpers import EventFeed, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db


def _fee(amount: int) -> int:
    """The fake's card fee: 2.9 % (half up) + 30."""
    return (amount * 29 + 500) // 1000 + 30


def _report() -> dict[str, revenue.StreamRow]:
    today = timezone.now().date()
    report = revenue.revenue_by_stream(
        start=today - timedelta(days=1), end=today + timedelta(days=1), currency="usd",
        group_by=None,
    )  # fmt: skip
    return {row.stream: row for row in report.rows}


def test_fees_follow_the_invoice_revenue_account_and_the_order(stripe_fake):
    feed = EventFeed()
    customer, pm = make_customer()
    subscribe(customer, pm, make_price(unit_amount=2500))
    # A subscription whose invoices name another stream's revenue account (as a recurring
    # content licence's do).
    other, other_pm = make_customer(email="licensee@example.com")
    subscribe(
        other, other_pm, make_price(unit_amount=4000),
        metadata={"revenue_account": SystemAccount.REVENUE_CONTENT.value},
    )  # fmt: skip
    feed.process_new()
    order = order_in(Order.State.RELEASED, price=10000)
    feed.process_new()

    fees = Entry.objects.filter(account__code=SystemAccount.STRIPE_FEES)
    assert sorted(e.amount for e in fees) == sorted([_fee(2500), _fee(4000), _fee(order.price)])
    rows = _report()
    assert rows["subscriptions"].stripe_fees == _fee(2500)
    assert rows["subscriptions"].gross == 2500
    assert rows["content"].stripe_fees == _fee(4000)
    assert rows["marketplace"].stripe_fees == _fee(10000)
    assert rows["marketplace"].gross == 10000
    assert rows["api_usage"].stripe_fees == 0
