"""Stripe's fees land in the stream of the payment they were taken on, end to end on the fake
Stripe (card fee 2.9 % + 30): the events are processed through dj-stripe as the webhook inbox
does, so the fee's balance transaction, charge and payment intent are in the mirror, and the
report follows them to the invoice's revenue account or the marketplace order."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.utils import timezone
from rest_framework.test import APIClient

from analytics import revenue
from ledger.chart import SystemAccount
from ledger.models import Entry
from marketplace.models import Order
from tests.accounts.factories import UserFactory
from tests.content.factories import ContentItemFactory, LicenseTypeFactory
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


def test_a_licence_sale_lost_to_a_dispute_costs_content_its_fees(stripe_fake):
    """A one-time licence of 2500 bought through the API with the fake's disputing card; the
    dispute is lost. Content: gross 2500, the creator's 2000 share reversed with the sale, the
    processing fee 103, and the disputed 2500 plus Stripe's dispute fee 1500 as disputes."""
    item = ContentItemFactory(platform_fee_percent=Decimal("20"))
    licence_type = LicenseTypeFactory(item=item, amount=2500)
    client = APIClient()
    client.force_authenticate(UserFactory(password=None))
    feed = EventFeed()
    response = client.post(
        f"/api/v1/content/{item.pk}/licenses/",
        {"license_type": licence_type.pk, "payment_method": "pm_card_createDispute"},
        "json",
    )
    assert response.status_code == 201, response.content
    feed.process_new()
    stripe.Dispute.close(stripe.Dispute.list(limit=1).data[0].id)
    feed.process_new()

    rows = _report()
    assert rows["content"] == revenue.StreamRow(
        None, "content", gross=2500, refunds=0, net_revenue=2500, commissions=0,
        creator_share=0, provider_share=0, stripe_fees=_fee(2500), disputes=2500 + 1500,
        margin=2500 - _fee(2500) - 4000, gross_margin="-0.6412",
    )  # fmt: skip
    assert rows["subscriptions"] == revenue.StreamRow(None, "subscriptions")
