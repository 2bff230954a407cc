"""Period close: a customer's usage period rated, invoiced in (fake) Stripe once, booked as API
usage revenue when paid, reversed by a refund; resumed, never repeated, after failures."""

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.utils import timezone

from ledger.chart import SystemAccount
from ledger.models import Transaction
from ledger.selectors import account_balance
from ledger.services import system_account
from marketplace import period_close
from marketplace.models import (
    ApiPlan,
    ApiPlanCharge,
    Meter,
    UsageChargeLine,
    UsagePeriodClose,
    month_bounds,
)
from subscriptions.services.billing import billing_customer_ensure
from tests.accounts.factories import UserFactory
from tests.marketplace.helpers import api_calls, bearer, error_of, event, key_for, post_events
from tests.subscriptions.effects_helpers import EventFeed, key

pytestmark = pytest.mark.django_db

Status = UsagePeriodClose.Status


@pytest.fixture
def plan(db):
    plan = ApiPlan.objects.create(code="usage", name="Usage", currency="usd", is_default=True)
    ApiPlanCharge.objects.create(
        plan=plan,
        meter=api_calls(),
        price_model="per_unit",
        unit_amount=Decimal("0.5"),
        free_units=100,
    )
    tokens = Meter.objects.create(code="tokens", name="Tokens", unit="token", aggregation="sum")
    ApiPlanCharge.objects.create(
        plan=plan,
        meter=tokens,
        price_model="package",
        package_size=1000,
        package_amount=Decimal(20),
    )
    return plan


def _customer_with_card(stripe_fake):
    user = UserFactory()
    billing_customer, _ = billing_customer_ensure(user=user)
    pm = stripe.PaymentMethod.attach(
        "pm_card_visa", customer=billing_customer.stripe_customer_id, idempotency_key=key("pm")
    )
    stripe.Customer.modify(
        billing_customer.stripe_customer_id,
        invoice_settings={"default_payment_method": pm.id},
        idempotency_key=key("default-pm"),
    )
    return user, billing_customer.stripe_customer_id


def _after_close():
    """A moment past this period's end plus the grace (the close is tested ahead of time)."""
    start, end = month_bounds(timezone.now())
    return start, end + period_close.grace() + timedelta(minutes=1)


def _items(customer_id: str) -> list:
    return list(stripe.InvoiceItem.list(customer=customer_id, limit=100).auto_paging_iter())


def _revenue(code: str) -> int:
    """The account's credit balance in usd."""
    return -account_balance(account=system_account(code)).get("usd", 0)


def test_a_period_is_rated_invoiced_once_paid_and_booked_as_api_usage(stripe_fake, plan):
    user, customer_id = _customer_with_card(stripe_fake)
    client = bearer(key_for(user))
    batch = [event("e1", 300), event("e2", 51), event("t1", 1500, metric="tokens")]
    assert post_events(client, batch).status_code == 202
    start, after = _after_close()

    close = period_close.usage_period_close(customer=user, period_start=start, now=after)

    assert close.status in (Status.FINALIZED, Status.PAID)
    # api_calls: 351 - 100 free = 251 * 0.5 = 125.5 → 126; tokens: 2 started packages * 20.
    lines = {line.meter.code: line for line in close.lines.select_related("meter")}
    assert (lines["api_calls"].amount, lines["tokens"].amount) == (126, 40)
    assert lines["api_calls"].free_quantity == 100
    assert close.amount == 166 and close.currency == "usd"
    invoice = stripe.Invoice.retrieve(close.stripe_invoice_id)
    assert invoice.status == "paid" and invoice.amount_paid == 166
    assert sorted(item.amount for item in _items(customer_id)) == [40, 126]
    assert invoice.metadata["revenue_account"] == "revenue.api_usage"

    EventFeed().process_new()

    close.refresh_from_db()
    assert close.status == Status.PAID
    posting = Transaction.objects.get(idempotency_key=f"stripe:invoice.paid:{invoice.id}")
    credits = {e.account.code: -e.amount for e in posting.entries.all() if e.amount < 0}
    assert credits == {SystemAccount.REVENUE_API_USAGE.value: 166}

    # Run again (the sweep, a retry): nothing new in Stripe, nothing new booked.
    again = period_close.usage_period_close(customer=user, period_start=start, now=after)
    assert again.pk == close.pk and again.status == Status.PAID
    assert len(_items(customer_id)) == 2
    assert UsageChargeLine.objects.filter(period_close=close).count() == 2


def test_a_refund_of_the_usage_invoice_reverses_its_revenue(stripe_fake, plan):
    user, _ = _customer_with_card(stripe_fake)
    post_events(bearer(key_for(user)), [event("e1", 1100)])
    start, after = _after_close()
    close = period_close.usage_period_close(customer=user, period_start=start, now=after)
    feed = EventFeed()
    feed.process_new()
    assert _revenue(SystemAccount.REVENUE_API_USAGE) == 500  # 1000 billable * 0.5

    invoice = stripe.Invoice.retrieve(close.stripe_invoice_id, expand=["payments"])
    payment_intent = invoice.payments.data[0].payment.payment_intent
    stripe.Refund.create(payment_intent=payment_intent, amount=200, idempotency_key=key("re"))
    feed.process_new()

    assert _revenue(SystemAccount.REVENUE_API_USAGE) == 300


def test_zero_charge_closes_without_an_invoice_and_no_plan_means_no_charge(stripe_fake, plan):
    user, customer_id = _customer_with_card(stripe_fake)
    post_events(bearer(key_for(user)), [event("e1", 100)])  # all inside the free 100
    start, after = _after_close()

    close = period_close.usage_period_close(customer=user, period_start=start, now=after)

    assert close.status == Status.NOTHING_TO_BILL and close.amount == 0
    assert close.stripe_invoice_id == "" and _items(customer_id) == []


def test_the_close_waits_for_the_grace_period(plan):
    user = UserFactory()
    start, end = month_bounds(timezone.now())
    with pytest.raises(period_close.PeriodNotOver):
        period_close.usage_period_close(
            customer=user, period_start=start, now=end + period_close.grace() - timedelta(seconds=1)
        )
    assert not UsagePeriodClose.objects.exists()


def test_events_for_a_closed_period_are_refused_but_retries_of_stored_ones_are_duplicates(
    stripe_fake, plan
):
    user, _ = _customer_with_card(stripe_fake)
    client = bearer(key_for(user))
    post_events(client, [event("e1", 500)])
    start, after = _after_close()
    period_close.usage_period_close(customer=user, period_start=start, now=after)

    late = post_events(client, [event("e1", 500), event("e2", 7)])
    error = error_of(late, 422)
    assert list(error["fields"]) == ["events[1].timestamp"]
    assert "closed" in error["fields"]["events[1].timestamp"][0]

    retry = post_events(client, [event("e1", 500)])
    assert retry.status_code == 202 and retry.json() == {"accepted": 0, "duplicates": 1}


def test_stripe_failing_after_an_item_was_created_resumes_without_a_second_item(
    stripe_fake, plan, monkeypatch
):
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    user, customer_id = _customer_with_card(stripe_fake)
    post_events(bearer(key_for(user)), [event("e1", 300), event("t1", 10, metric="tokens")])
    start, after = _after_close()
    # The first item is created in Stripe, but the answer is lost (a 500 after the write).
    stripe_fake.fail_next("POST", "/v1/invoiceitems", when="after")

    failed = period_close.usage_period_close(customer=user, period_start=start, now=after)

    assert failed.status == Status.INVOICING
    assert failed.attempts == 1 and failed.last_error and failed.next_attempt_at > after
    assert len(_items(customer_id)) == 1
    # Not due before its next attempt; due after it.
    assert (user.pk, start) not in period_close.periods_due(now=after)

    resumed = period_close.usage_period_close(customer=user, period_start=start, now=after)

    assert resumed.status in (Status.FINALIZED, Status.PAID)
    assert sorted(item.amount for item in _items(customer_id)) == [20, 100]
    invoice = stripe.Invoice.retrieve(resumed.stripe_invoice_id)
    assert invoice.amount_paid == 120
    assert set(resumed.lines.values_list("stripe_invoice_item_id", flat=True)) == {
        item.id for item in _items(customer_id)
    }


def test_an_invoice_created_by_an_attempt_that_died_is_found_not_made_again(
    stripe_fake, plan, monkeypatch
):
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    user, customer_id = _customer_with_card(stripe_fake)
    post_events(bearer(key_for(user)), [event("e1", 300)])
    start, after = _after_close()
    stripe_fake.fail_next("POST", "/v1/invoices", when="after")

    failed = period_close.usage_period_close(customer=user, period_start=start, now=after)
    assert failed.status == Status.INVOICING and failed.stripe_invoice_id == ""

    resumed = period_close.usage_period_close(customer=user, period_start=start, now=after)

    invoices = stripe.Invoice.list(customer=customer_id, limit=10).data
    assert [invoice.id for invoice in invoices] == [resumed.stripe_invoice_id]
    assert invoices[0].amount_paid == 100


def test_the_sweep_closes_every_due_customer_and_survives_one_failing(
    stripe_fake, plan, monkeypatch
):
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    good, _ = _customer_with_card(stripe_fake)
    other, _ = _customer_with_card(stripe_fake)
    no_usage, _ = _customer_with_card(stripe_fake)
    post_events(bearer(key_for(good)), [event("e1", 300)])
    post_events(bearer(key_for(other)), [event("e1", 900)])
    _, after = _after_close()
    stripe_fake.fail_next("POST", "/v1/invoices", when="before")  # whoever goes first

    result = period_close.usage_periods_close_due(now=after)

    assert (result.closed, result.failed, result.nothing_to_bill) == (1, 1, 0)
    assert not UsagePeriodClose.objects.filter(customer=no_usage).exists()
    later = after + timedelta(hours=1)
    assert period_close.usage_periods_close_due(now=later).closed == 1
    assert set(UsagePeriodClose.objects.values_list("status", flat=True)) <= {
        Status.FINALIZED,
        Status.PAID,
    }
    assert period_close.periods_due(now=later) == []
