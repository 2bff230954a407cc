"""Usage royalties through the period close, against the fake Stripe: a per-use licence issued
without a charge, its uses and a limited licence's overage rated by the metering engine and
invoiced at the close (beside API usage, on one invoice; charges in several currencies:
tests/marketplace/test_period_close_currencies.py), split to the creators when the invoice is
paid, reversed by a refund; closes and webhooks never book twice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.db.models import Sum
from django.utils import timezone
from rest_framework.test import APIClient

from content import licensing, royalties
from content.earnings import creator_earnings, earnings_row
from content.models import License, LicenseType
from content.services import content_shares_set
from ledger.chart import SystemAccount
from ledger.models import Account, Entry, Transaction
from marketplace import period_close
from marketplace.models import ApiPlan, ApiPlanCharge, UsagePeriodClose, month_bounds
from subscriptions.models import BillingCustomer
from tests.accounts.factories import UserFactory
from tests.content.factories import ContentItemFactory, CreatorFactory, LicenseTypeFactory
from tests.marketplace.helpers import api_calls, bearer, event, key_for, post_events
from tests.subscriptions.effects_helpers import EventFeed, key

pytestmark = pytest.mark.django_db

Status = UsagePeriodClose.Status
CLEARING = SystemAccount.STRIPE_CLEARING.value
CONTENT = SystemAccount.REVENUE_CONTENT.value
API_USAGE = SystemAccount.REVENUE_API_USAGE.value


def balance(code: str) -> int:
    return Entry.objects.filter(account__code=code).aggregate(t=Sum("amount"))["t"] or 0


def creator_balance(creator) -> int:
    return (
        Entry.objects.filter(
            account__payee_type=Account.PayeeType.CREATOR, account__payee_id=creator.pk
        ).aggregate(t=Sum("amount"))["t"]
        or 0
    )


def three_creator_item(*, fee: str = "20.00"):
    owner = CreatorFactory(platform_fee_percent=Decimal(fee))
    a, b = CreatorFactory(), CreatorFactory()
    item = ContentItemFactory(owner=owner)
    content_shares_set(
        item=item,
        shares=[(owner, Decimal("33.34")), (a, Decimal("33.33")), (b, Decimal("33.33"))],
    )
    return item, (owner, a, b)


def buy(buyer, item, license_type, payment_method: str = "pm_card_visa"):
    client = APIClient()
    client.force_authenticate(buyer)
    return client.post(
        f"/api/v1/content/{item.pk}/licenses/",
        {"license_type": license_type.pk, "payment_method": payment_method},
        "json",
    )


def per_use_type(item, rate: str = "2.5", **extra):
    return LicenseTypeFactory(
        item=item,
        kind=LicenseType.Kind.USAGE_ROYALTY,
        pricing=LicenseType.Pricing.PER_USE,
        amount=0,
        per_use_unit_amount=Decimal(rate),
        **extra,
    )


def after_close():
    start, end = month_bounds(timezone.now())
    return start, end + period_close.grace() + timedelta(minutes=1)


def use(key_: str, quantity: int, event_id: str, event: str = "view"):
    return licensing.license_usage_record(
        key=key_, event=event, quantity=quantity, event_id=event_id
    )


# --- issuing a per-use licence -----------------------------------------------------------


def test_a_per_use_licence_is_issued_without_a_charge_and_keeps_the_card_on_file(stripe_fake):
    item, _ = three_creator_item()
    per_use = per_use_type(item, term_days=30)
    buyer = UserFactory(password=None)

    response = buy(buyer, item, per_use)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["amount"]) == ("active", 0)
    license = License.objects.get(pk=body["id"])
    assert license.expires_at == license.issued_at + timedelta(days=30)
    customer = stripe.Customer.retrieve(BillingCustomer.objects.get(user=buyer).stripe_customer_id)
    assert customer.invoice_settings.default_payment_method
    assert not Transaction.objects.exists()


def test_a_per_use_licence_with_a_bad_card_is_not_issued(stripe_fake):
    item, _ = three_creator_item()
    response = buy(UserFactory(password=None), item, per_use_type(item), "pm_does_not_exist")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"].keys() == {"payment_method"}
    assert not License.objects.exists()


# --- rated by the engine, invoiced at the close, split when paid ---------------------------


def _per_use_and_overage(stripe_fake):
    """A buyer with a per-use licence (7 + 5 views at 2.5) and a one-time licence limited to
    10 downloads with a 1.5x allowance, 14 used (4 over, at 100)."""
    item, creators = three_creator_item()
    buyer = UserFactory(password=None)
    per_use = buy(buyer, item, per_use_type(item)).json()
    limited_type = LicenseTypeFactory(
        item=item,
        amount=999,
        limits={"downloads": 10},
        overage=LicenseType.Overage.ALLOW_150,
        per_use_unit_amount=Decimal(100),
    )
    limited = buy(buyer, item, limited_type).json()
    assert limited["status"] == "active"
    use(per_use["key"], 7, "v1")
    use(per_use["key"], 5, "v2")
    use(limited["key"], 10, "d1", "download")
    assert use(limited["key"], 4, "d2", "download").overage == 4
    assert not use(limited["key"], 2, "d3", "download").accepted  # past 1.5x: denied
    return buyer, item, creators, per_use, limited


def test_uses_and_overage_are_rated_invoiced_once_and_split_when_paid(stripe_fake):
    buyer, item, (owner, a, b), per_use, limited = _per_use_and_overage(stripe_fake)
    sale = (balance(CONTENT), [creator_balance(c) for c in (owner, a, b)])  # the one-time sale
    start, after = after_close()
    assert (buyer.pk, start) in period_close.periods_due(now=after)

    close = period_close.usage_period_close(customer=buyer, period_start=start, now=after)

    # 12 uses at 2.5 = 30; 4 downloads over the limit at 100 = 400.
    lines = {line.reference: line for line in close.lines.all()}
    assert set(lines) == {f"license-{per_use['id']}-uses", f"license-{limited['id']}-overage"}
    assert lines[f"license-{per_use['id']}-uses"].amount == 30
    assert lines[f"license-{per_use['id']}-uses"].quantity == 12
    assert lines[f"license-{limited['id']}-overage"].amount == 400
    assert all(line.source == "content" and line.meter is None for line in lines.values())
    assert (close.amount, close.currency, close.status) == (430, "usd", Status.PAID)
    invoice = stripe.Invoice.retrieve(close.stripe_invoice_id)
    assert (invoice.amount_paid, invoice.metadata["revenue_account"]) == (430, CONTENT)
    items = stripe.InvoiceItem.list(invoice=invoice.id, limit=100).data
    assert sorted(i.amount for i in items) == [30, 400]
    assert {i.metadata["charge_source"] for i in items} == {"content"}

    feed = EventFeed()
    feed.process_new()

    # 30: creators 24 (80 %), split 8/8/8; 400: creators 320, 107/107/106 (largest remainder).
    splits = Transaction.objects.filter(source=royalties.SPLIT_SOURCE)
    assert splits.count() == 2
    assert balance(CONTENT) - sale[0] == -(6 + 80)
    moved = [creator_balance(c) - before for c, before in zip((owner, a, b), sale[1], strict=True)]
    assert sum(moved) == -(24 + 320)
    assert moved == [-(8 + 107), -(8 + 107), -(8 + 106)]
    assert balance(SystemAccount.REVENUE_SUBSCRIPTIONS.value) == 0
    # The owner's earnings on the item: the one-time sale, and the royalties of both lines.
    rows = [earnings_row(row) for row in creator_earnings(creator=owner)]
    assert {row["content_id"] for row in rows} == {item.pk}
    assert sum(row["royalties"] for row in rows) == 8 + 107
    assert sum(row["sales"] for row in rows) == -sale[1][0]

    # Nothing twice: the close again, and the events again.
    again = period_close.usage_period_close(customer=buyer, period_start=start, now=after)
    assert again.pk == close.pk and again.status == Status.PAID
    assert len(stripe.InvoiceItem.list(invoice=invoice.id, limit=100).data) == 2
    paid = stripe.Invoice.retrieve(invoice.id).to_dict()
    assert len(royalties.royalty_invoice_paid(invoice=paid, occurred_at=timezone.now())) == 2
    assert Transaction.objects.filter(source=royalties.SPLIT_SOURCE).count() == 2
    assert creator_balance(owner) - sale[1][0] == -(8 + 107)


def test_a_refund_of_the_royalty_invoice_reverses_the_split_pro_rata(stripe_fake):
    buyer, _item, creators, _, _ = _per_use_and_overage(stripe_fake)
    start, after = after_close()
    close = period_close.usage_period_close(customer=buyer, period_start=start, now=after)
    feed = EventFeed()
    feed.process_new()
    before = [creator_balance(c) for c in creators]
    content_before = balance(CONTENT)

    invoice = stripe.Invoice.retrieve(close.stripe_invoice_id, expand=["payments"])
    intent = invoice.payments.data[0].payment.payment_intent
    stripe.Refund.create(payment_intent=intent, amount=215, idempotency_key=key("re"))
    feed.process_new()

    # Half the invoice refunded: half of each split comes back (24 → 12, 320 → 160).
    back = [creator_balance(c) - was for c, was in zip(creators, before, strict=True)]
    assert sum(back) == 12 + 160
    # revenue.content: -215 by the invoice's reversal, +172 from the creators: 43 of the 86 fee.
    assert balance(CONTENT) - content_before == 215 - 172

    stripe.Refund.create(payment_intent=intent, idempotency_key=key("re2"))  # the rest
    feed.process_new()
    assert [creator_balance(c) for c in creators] == [
        was - part for was, part in zip(before, [-(8 + 107), -(8 + 107), -(8 + 106)], strict=True)
    ]
    assert Transaction.objects.filter(source=royalties.SPLIT_REFUND_SOURCE).count() == 4


def test_api_usage_and_royalties_share_one_invoice_and_each_stream_gets_its_revenue(stripe_fake):
    plan = ApiPlan.objects.create(code="usage", name="Usage", currency="usd", is_default=True)
    ApiPlanCharge.objects.create(
        plan=plan, meter=api_calls(), price_model="per_unit", unit_amount=Decimal(1)
    )
    item, creators = three_creator_item(fee="10.00")
    buyer = UserFactory(password=None)
    per_use = buy(buyer, item, per_use_type(item, rate="0.5")).json()
    use(per_use["key"], 999, "v1")  # 499.5 → 500 (half up, once)
    post_events(bearer(key_for(buyer)), [event("e1", 250)])
    start, after = after_close()

    close = period_close.usage_period_close(customer=buyer, period_start=start, now=after)

    assert (close.amount, close.status) == (750, Status.PAID)
    invoice = stripe.Invoice.retrieve(close.stripe_invoice_id)
    assert invoice.amount_paid == 750
    assert invoice.metadata["revenue_account"] == API_USAGE
    assert invoice.description.startswith("Usage, ")
    EventFeed().process_new()

    assert balance(API_USAGE) == -250
    assert balance(CONTENT) == -50  # the 10 % fee of 500
    assert sum(creator_balance(c) for c in creators) == -450
    assert balance(CLEARING) + balance(SystemAccount.STRIPE_FEES.value) == 750


def test_a_period_without_billed_usage_is_nothing_to_bill(stripe_fake):
    item, _ = three_creator_item()
    buyer = UserFactory(password=None)
    limited = LicenseTypeFactory(
        item=item,
        limits={"views": 10},
        overage=LicenseType.Overage.ALLOW_200,
        per_use_unit_amount=Decimal(3),
    )
    body = buy(buyer, item, limited).json()
    use(body["key"], 10, "v1")  # within the limit
    start, after = after_close()
    close = period_close.usage_period_close(customer=buyer, period_start=start, now=after)
    assert close.status == Status.NOTHING_TO_BILL and not close.stripe_invoice_id


def test_overage_counts_only_what_went_over_in_the_period(stripe_fake):
    item, _ = three_creator_item()
    buyer = UserFactory(password=None)
    limited = LicenseTypeFactory(
        item=item,
        limits={"views": 10},
        overage=LicenseType.Overage.ALLOW_200,
        per_use_unit_amount=Decimal(3),
    )
    body = buy(buyer, item, limited).json()
    start, end = month_bounds(timezone.now())
    last_month = start - timedelta(days=3)
    licensing.license_usage_record(
        key=body["key"], event="view", quantity=12, event_id="old", at=last_month
    )
    use(body["key"], 5, "v1")
    source = royalties.ContentRoyalties()

    (charge,) = source.charges(customer=buyer, start=start, end=end)
    (earlier,) = source.charges(customer=buyer, start=month_bounds(last_month)[0], end=start)

    assert (charge.quantity, charge.amount) == (5, 15)  # 17 used, 12 before: 5 more over
    assert (earlier.quantity, earlier.amount) == (2, 6)
