"""Period close of charges in several currencies, against the fake Stripe with signed webhooks:
one invoice per currency (the period's own close and a split per other currency), each with
only its currency's lines, invoiced, retried and paid on its own, the creators' royalties
booked once per invoice; re-running the close or the sweep changes nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.db.models import Sum
from django.urls import reverse

from content import royalties
from ledger.chart import SystemAccount
from ledger.models import Account, Entry, Transaction
from marketplace import period_close
from marketplace.models import ApiPlan, ApiPlanCharge, UsagePeriodClose
from subscriptions.models import BillingCustomer
from tests.accounts.factories import UserFactory
from tests.content.test_royalties import (
    after_close,
    buy,
    per_use_type,
    three_creator_item,
    use,
)
from tests.marketplace.helpers import api_calls, bearer, event, key_for, post_events
from tests.stripe_harness import SignedInbox
from tests.subscriptions.effects_helpers import key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]

Status = UsagePeriodClose.Status
API_USAGE = SystemAccount.REVENUE_API_USAGE.value
CONTENT = SystemAccount.REVENUE_CONTENT.value
CLEARING = SystemAccount.STRIPE_CLEARING.value


@pytest.fixture
def inbox(client, django_capture_on_commit_callbacks):
    return SignedInbox(client, django_capture_on_commit_callbacks)


@pytest.fixture
def usd_plan(db):
    plan = ApiPlan.objects.create(code="usage", name="Usage", currency="usd", is_default=True)
    ApiPlanCharge.objects.create(
        plan=plan, meter=api_calls(), price_model="per_unit", unit_amount=Decimal(1)
    )
    return plan


def balance(code: str, currency: str) -> int:
    entries = Entry.objects.filter(account__code=code, currency=currency)
    return entries.aggregate(t=Sum("amount"))["t"] or 0


def creator_balance(creator, currency: str) -> int:
    entries = Entry.objects.filter(
        account__payee_type=Account.PayeeType.CREATOR, account__payee_id=creator.pk
    ).filter(currency=currency)
    return entries.aggregate(t=Sum("amount"))["t"] or 0


def _usd_usage_and_eur_licence(card: str = "pm_card_visa"):
    """250 API calls at 1 (250 usd cents) and 12 uses of an eur per-use licence at 2.5 (30
    eur cents), the licence's item split 80 % to three creators."""
    item, creators = three_creator_item()
    buyer = UserFactory(password=None)
    per_use = buy(buyer, item, per_use_type(item, currency="eur"), card).json()
    use(per_use["key"], 12, "v1")
    assert post_events(bearer(key_for(buyer)), [event("e1", 250)]).status_code == 202
    return buyer, creators, per_use


def _stripe_customer(user) -> str:
    return BillingCustomer.objects.get(user=user).stripe_customer_id


def _invoices(customer_id: str) -> list:
    return list(stripe.Invoice.list(customer=customer_id, limit=100).auto_paging_iter())


def _items(invoice_id: str) -> list:
    return list(stripe.InvoiceItem.list(invoice=invoice_id, limit=100).auto_paging_iter())


def test_each_currency_is_invoiced_apart_and_each_invoice_paid_books_once(
    stripe_fake, usd_plan, inbox
):
    # The card on file declines: both invoices stay open until the customer pays them.
    buyer, creators, per_use = _usd_usage_and_eur_licence("pm_card_chargeCustomerFail")
    start, after = after_close()

    close = period_close.usage_period_close(customer=buyer, period_start=start, now=after)

    split = close.splits.get()
    assert (close.currency, close.amount, close.status, close.split_from_id) == (
        "usd", 250, Status.FINALIZED, None,
    )  # fmt: skip
    assert (split.currency, split.amount, split.status) == ("eur", 30, Status.FINALIZED)
    assert (split.customer_id, split.period_start, split.period_end) == (
        buyer.pk, close.period_start, close.period_end,
    )  # fmt: skip
    assert [(line.meter.code, line.amount) for line in close.lines.all()] == [("api_calls", 250)]
    assert [(line.source, line.reference, line.amount) for line in split.lines.all()] == [
        ("content", f"license-{per_use['id']}-uses", 30)
    ]
    customer_id = _stripe_customer(buyer)
    invoices = {invoice.id: invoice for invoice in _invoices(customer_id)}
    assert set(invoices) == {close.stripe_invoice_id, split.stripe_invoice_id}
    usd, eur = invoices[close.stripe_invoice_id], invoices[split.stripe_invoice_id]
    assert (usd.currency, usd.amount_due, usd.status) == ("usd", 250, "open")
    assert (eur.currency, eur.amount_due, eur.status) == ("eur", 30, "open")
    assert usd.metadata.to_dict() == {
        "usage_period_close": str(close.pk),
        "usage_period": f"{start:%Y-%m}",
        "revenue_account": API_USAGE,
    }
    assert eur.metadata["usage_period_close"] == str(split.pk)
    assert eur.metadata["revenue_account"] == CONTENT  # only royalties on it
    assert [(i.currency, i.amount, i.metadata.get("meter")) for i in _items(usd.id)] == [
        ("usd", 250, "api_calls")
    ]
    assert [(i.currency, i.amount, i.metadata.get("charge_source")) for i in _items(eur.id)] == [
        ("eur", 30, "content")
    ]
    inbox.deliver_new()  # finalized, payment failed: nothing booked, nothing paid
    assert not Transaction.objects.filter(source=royalties.SPLIT_SOURCE).exists()

    # The customer pays each invoice with a working card; Stripe tells us by invoice.paid.
    card = stripe.PaymentMethod.attach("pm_card_visa", customer=customer_id)
    stripe.Invoice.pay(usd.id, payment_method=card.id, idempotency_key=key("pay"))
    paid_usd = inbox.deliver_new()
    close.refresh_from_db()
    split.refresh_from_db()
    assert (close.status, split.status) == (Status.PAID, Status.FINALIZED)
    assert "invoice.paid" in {e["type"] for e in paid_usd}
    stripe.Invoice.pay(eur.id, payment_method=card.id, idempotency_key=key("pay"))
    paid_eur = inbox.deliver_new()
    split.refresh_from_db()
    assert split.status == Status.PAID

    # usd: all API usage revenue. eur: 30 of royalties, 6 (20 %) to the platform, 8/8/8.
    assert (balance(API_USAGE, "usd"), balance(CONTENT, "usd")) == (-250, 0)
    assert (balance(API_USAGE, "eur"), balance(CONTENT, "eur")) == (0, -6)
    assert [creator_balance(c, "eur") for c in creators] == [-8, -8, -8]
    assert [creator_balance(c, "usd") for c in creators] == [0, 0, 0]
    assert balance(CLEARING, "usd") + balance(SystemAccount.STRIPE_FEES.value, "usd") == 250
    assert balance(CLEARING, "eur") + balance(SystemAccount.STRIPE_FEES.value, "eur") == 30
    booked = Transaction.objects.count()
    splits = Transaction.objects.filter(source=royalties.SPLIT_SOURCE)
    assert [(t.idempotency_key, t.entries.first().currency) for t in splits] == [
        (royalties.split_key(eur.id, f"line-{split.lines.get().pk}"), "eur")
    ]

    # Nothing twice: the events again (Stripe redelivers), the close, the sweep.
    inbox.deliver(paid_usd + paid_eur)
    again = period_close.usage_period_close(customer=buyer, period_start=start, now=after)
    sweep = period_close.usage_periods_close_due(now=after + timedelta(days=1))
    assert again.pk == close.pk and list(again.splits.all()) == [split]
    assert (sweep.closed, sweep.failed, sweep.nothing_to_bill) == (0, 0, 0)
    assert Transaction.objects.count() == booked
    assert len(_invoices(customer_id)) == 2
    assert (len(_items(usd.id)), len(_items(eur.id))) == (1, 1)
    assert UsagePeriodClose.objects.filter(customer=buyer).count() == 2


def test_a_stripe_failure_on_the_second_invoice_retries_only_that_one(
    stripe_fake, usd_plan, monkeypatch
):
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    buyer, _, _ = _usd_usage_and_eur_licence()
    start, after = after_close()
    # The eur invoice is created in Stripe but its answer is lost (a 500 after the write).
    create, armed = stripe.Invoice.create, []

    def create_failing_in_eur(**params):
        if params.get("currency") == "eur" and not armed:
            armed.append(params["idempotency_key"])
            stripe_fake.fail_next("POST", "/v1/invoices", when="after")
        return create(**params)

    monkeypatch.setattr(stripe.Invoice, "create", create_failing_in_eur)

    close = period_close.usage_period_close(customer=buyer, period_start=start, now=after)

    split = close.splits.get()
    assert (close.status, close.attempts, close.last_error) == (Status.PAID, 0, "")
    assert (split.status, split.attempts, split.stripe_invoice_id) == (Status.INVOICING, 1, "")
    assert split.last_error and split.next_attempt_at > after
    assert armed == [f"usage-eur-invoice-{buyer.pk}-{start:%Y-%m}-a0"]
    customer_id = _stripe_customer(buyer)
    assert len(_invoices(customer_id)) == 2  # the lost one exists in Stripe
    # Waiting for its next attempt: the sweep leaves it (and the paid close) alone.
    assert period_close.periods_due(now=after) == []
    assert period_close.usage_periods_close_due(now=after).failed == 0

    later = split.next_attempt_at + timedelta(seconds=1)
    assert period_close.periods_due(now=later) == [(buyer.pk, start)]
    sweep = period_close.usage_periods_close_due(now=later)

    assert (sweep.closed, sweep.failed) == (1, 0)
    split.refresh_from_db()
    close.refresh_from_db()
    assert split.status == Status.PAID and split.last_error == ""
    assert (close.status, close.attempts) == (Status.PAID, 0)
    invoices = {invoice.id: invoice for invoice in _invoices(customer_id)}
    assert set(invoices) == {close.stripe_invoice_id, split.stripe_invoice_id}  # found, not new
    assert invoices[split.stripe_invoice_id].amount_paid == 30
    assert invoices[close.stripe_invoice_id].amount_paid == 250
    assert [i.amount for i in _items(split.stripe_invoice_id)] == [30]
    assert [i.amount for i in _items(close.stripe_invoice_id)] == [250]
    assert period_close.periods_due(now=later + timedelta(hours=1)) == []


def test_stripe_down_fails_each_invoice_on_its_own_and_retry_now_resumes_them(
    stripe_fake, usd_plan, monkeypatch, admin_client
):
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    buyer, _, _ = _usd_usage_and_eur_licence()
    _, after = after_close()
    stripe_fake.fail_next("POST", "/v1/invoices", when="before", count=2)

    result = period_close.usage_periods_close_due(now=after)

    close = UsagePeriodClose.objects.get(customer=buyer, split_from=None)
    split = close.splits.get()
    assert (result.closed, result.failed) == (0, 1)
    assert [(c.status, c.attempts) for c in (close, split)] == [(Status.INVOICING, 1)] * 2
    assert not _invoices(_stripe_customer(buyer))

    # Staff retry the split alone: only its invoice is made.
    response = admin_client.post(
        reverse("admin:marketplace_usageperiodclose_changelist"),
        {"action": "retry_now", "_selected_action": [split.pk]},
    )
    assert response.status_code == 302
    split.refresh_from_db()
    close.refresh_from_db()
    assert (split.status, close.status) == (Status.PAID, Status.INVOICING)
    assert [i.currency for i in _invoices(_stripe_customer(buyer))] == ["eur"]

    # The period's own close, retried, leaves the paid split alone.
    period_close.usage_period_close_retry(close=close)
    close.refresh_from_db()
    assert close.status == Status.PAID
    assert sorted(i.currency for i in _invoices(_stripe_customer(buyer))) == ["eur", "usd"]

    page = admin_client.get(reverse("admin:marketplace_usageperiodclose_change", args=[close.pk]))
    assert "0.30 EUR" in page.content.decode()
    listing = admin_client.get(
        reverse("admin:marketplace_usageperiodclose_changelist") + "?split_from__isnull=False"
    )
    assert f"close {close.pk}" in listing.content.decode()


def test_without_api_usage_billed_the_first_currency_keeps_the_close(stripe_fake, usd_plan):
    """API usage inside nothing billed (a free plan line of 0), royalties in gbp and eur: the
    close takes eur (alphabetical), gbp is split off; the zero usd line stays, uninvoiced."""
    usd_plan.charges.update(free_units=1000)
    item, _ = three_creator_item()
    buyer = UserFactory(password=None)
    eur = buy(buyer, item, per_use_type(item, currency="eur")).json()
    gbp = buy(buyer, item, per_use_type(item, rate="1", currency="gbp")).json()
    use(eur["key"], 4, "v1")  # 10
    use(gbp["key"], 7, "v2")  # 7
    post_events(bearer(key_for(buyer)), [event("e1", 10)])
    start, after = after_close()

    close = period_close.usage_period_close(customer=buyer, period_start=start, now=after)

    split = close.splits.get()
    assert (close.currency, close.amount, close.status) == ("eur", 10, Status.PAID)
    assert (split.currency, split.amount, split.status) == ("gbp", 7, Status.PAID)
    assert sorted((line.source, line.amount) for line in close.lines.all()) == [
        ("", 0), ("content", 10),
    ]  # fmt: skip
    assert [line.amount for line in split.lines.all()] == [7]
    invoices = {i.currency: i for i in _invoices(_stripe_customer(buyer))}
    assert set(invoices) == {"eur", "gbp"}
    assert {i.metadata["revenue_account"] for i in invoices.values()} == {CONTENT}
    assert [i.amount for i in _items(invoices["eur"].id)] == [10]


def test_a_refund_of_one_currencys_invoice_reverses_only_its_bookings(stripe_fake, usd_plan, inbox):
    buyer, creators, _ = _usd_usage_and_eur_licence()
    start, after = after_close()
    close = period_close.usage_period_close(customer=buyer, period_start=start, now=after)
    split = close.splits.get()
    assert (close.status, split.status) == (Status.PAID, Status.PAID)
    inbox.deliver_new()
    assert [creator_balance(c, "eur") for c in creators] == [-8, -8, -8]

    invoice = stripe.Invoice.retrieve(split.stripe_invoice_id, expand=["payments"])
    intent = invoice.payments.data[0].payment.payment_intent
    stripe.Refund.create(payment_intent=intent, idempotency_key=key("re"))
    inbox.deliver_new()

    assert [creator_balance(c, "eur") for c in creators] == [0, 0, 0]
    assert (balance(CONTENT, "eur"), balance(API_USAGE, "eur")) == (0, 0)
    assert balance(API_USAGE, "usd") == -250  # the usd invoice is not touched
    assert Transaction.objects.filter(source=royalties.SPLIT_REFUND_SOURCE).count() == 1
