"""The Stripe API failing (issue 14, faults): refused connections, 500s, hangs and lost answers.

A small proxy (``tests/faults/stripe_proxy.py``) sits between our ``stripe`` client and this
test's fake Stripe and is switched to fail; nothing of our code is patched. What must hold:

- the client retries (``STRIPE_MAX_NETWORK_RETRIES``, backoff) with the same idempotency key
  on every attempt, so a write whose answer was lost is replayed by Stripe, not made twice;
- an API request that calls Stripe answers a clean 503 JSON error with ``Retry-After`` (never
  500), within the client's timeout, and commits nothing that claims Stripe did it;
- the monthly payout task retries with backoff, resuming its batch;
- the usage period close records the failure and resumes later, finding what it made;
- after recovery no payout, transfer, refund, charge or invoice item exists twice, counted on
  the fake through the ``stripe`` client, and in our ledger.

The client waits ``CLIENT_TIMEOUT`` seconds here (the setting's default is 20) so that a hang
costs a test a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
import stripe
from celery.exceptions import Retry
from django.urls import reverse
from django.utils import timezone
from djstripe import models as djm
from rest_framework.test import APIClient

from affiliates.tasks.commissions import affiliate_payouts_run
from content.models import License
from content.purchases import REFUND_SOURCE as LICENSE_REFUND_SOURCE
from content.purchases import SALE_SOURCE
from ledger.models import Payout, PayoutBatch, Transaction
from ledger.payouts import PAYOUT_SOURCE, payout_batch_run
from ledger.tasks import PAYOUT_TASK_MAX_RETRIES, payout_batch_run_or_retry
from marketplace import period_close
from marketplace.models import ApiPlan, ApiPlanCharge, Meter, Order, UsagePeriodClose, month_bounds
from marketplace.orders.money import PAID_SOURCE
from revenue_site.stripe_errors import StripeUnavailable
from revenue_site.stripe_setup import stripe_client_configure
from subscriptions.services.billing import billing_customer_ensure
from tests.accounts.factories import UserFactory
from tests.content.factories import LicenseTypeFactory
from tests.faults.stripe_proxy import StripeProxy
from tests.ledger.test_payouts import AS_OF, _affiliate, _earn
from tests.marketplace.factories_orders import order_in
from tests.marketplace.helpers import api_calls, bearer, event, key_for, post_events
from tests.stripe_harness import StripeFake, connected_account
from tests.subscriptions.effects_helpers import EventFeed, make_customer, make_price, subscribe

pytestmark = [pytest.mark.fault, pytest.mark.django_db]

CLIENT_TIMEOUT = 2.0  # seconds per attempt
RETRIES = 2
# Three attempts that each hang for the timeout, plus the backoff between them (0.5 s, 1 s).
WORST_CASE_SECONDS = (RETRIES + 1) * CLIENT_TIMEOUT + 1.5 + 3  # + slack for a busy machine
FAILURES = ["refuse", "error", "hang"]


@pytest.fixture
def proxy(stripe_fake: StripeFake, settings) -> Iterator[StripeProxy]:
    """The fake Stripe behind a switchable proxy; the client as the settings make it, with a
    short timeout."""
    saved = (stripe.default_http_client, stripe.max_network_retries)
    proxy = StripeProxy(stripe_fake.api_base)
    stripe_client_configure(timeout=CLIENT_TIMEOUT, max_network_retries=RETRIES)
    stripe.api_base = proxy.url
    settings.STRIPE_API_HOST = proxy.url
    try:
        yield proxy
    finally:
        proxy.stop()
        stripe.api_base = stripe_fake.api_base
        stripe.default_http_client, stripe.max_network_retries = saved


@contextmanager
def straight_to(fake: StripeFake) -> Iterator[None]:
    """Read the fake directly (counting its objects), not through the proxy."""
    saved = stripe.api_base
    stripe.api_base = fake.api_base
    try:
        yield
    finally:
        stripe.api_base = saved


def keys(proxy: StripeProxy, method: str, path: str) -> list[str]:
    return [seen.idempotency_key for seen in proxy.requests(method, path)]


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _buy(buyer, license_type):
    return client_for(buyer).post(
        f"/api/v1/content/{license_type.item.pk}/licenses/",
        {"license_type": license_type.pk, "payment_method": "pm_card_visa"},
        "json",
    )


def _assert_unavailable(response, started: float) -> None:
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["error"]["code"] == "stripe_unavailable"
    assert int(response["Retry-After"]) == body["error"]["retry_after"] > 0
    assert time.monotonic() - started < WORST_CASE_SECONDS


# --- the client: retries, backoff, one key -------------------------------------------------


def test_a_lost_answer_is_retried_under_the_same_key_and_the_payout_is_made_once(
    stripe_fake, proxy
):
    account = connected_account()
    affiliate = _affiliate(method="stripe_connect", stripe_account_id=account.id)
    _earn(affiliate, 6000)
    # The transfer is made at Stripe, its answer lost on the way back.
    proxy.fail("lose_answer", count=1, method="POST", path="/v1/transfers")

    batch = payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    assert batch.status == PayoutBatch.Status.COMPLETED
    attempts = proxy.requests("POST", "/v1/transfers")
    assert [a.outcome for a in attempts] == ["lose_answer", "pass"]
    assert len(set(keys(proxy, "POST", "/v1/transfers"))) == 1  # the retry replayed the key
    with straight_to(stripe_fake):
        transfers = stripe.Transfer.list(destination=account.id).data
    assert [t.amount for t in transfers] == [6000]
    assert Payout.objects.get().stripe_transfer_id == transfers[0].id
    assert Transaction.objects.filter(source=PAYOUT_SOURCE).count() == 1


@pytest.mark.parametrize("failure", FAILURES)
def test_a_payout_batch_with_stripe_down_stays_pending_and_pays_once_after(
    stripe_fake, proxy, failure
):
    account = connected_account()
    affiliate = _affiliate(method="stripe_connect", stripe_account_id=account.id)
    _earn(affiliate, 6000)
    if failure == "refuse":
        proxy.fail(failure)
    else:  # the transfer itself (looking for an earlier one passes)
        proxy.fail(failure, method="POST", path="/v1/transfers")

    started = time.monotonic()
    with pytest.raises(StripeUnavailable):
        payout_batch_run(payee_type="affiliate", as_of=AS_OF)
    assert time.monotonic() - started < WORST_CASE_SECONDS

    payout = Payout.objects.get()
    assert (payout.status, payout.stripe_transfer_id) == (Payout.Status.PENDING, "")
    assert not Transaction.objects.filter(source=PAYOUT_SOURCE).exists()
    if failure != "refuse":  # refused connections never reach the proxy
        assert len(keys(proxy, "POST", "/v1/transfers")) == RETRIES + 1
    proxy.heal()

    batch = payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    assert batch.status == PayoutBatch.Status.COMPLETED
    assert len(set(keys(proxy, "POST", "/v1/transfers"))) == 1  # one key across every attempt
    with straight_to(stripe_fake):
        assert [t.amount for t in stripe.Transfer.list(destination=account.id).data] == [6000]
    assert Transaction.objects.filter(source=PAYOUT_SOURCE).count() == 1


def test_the_monthly_payout_task_retries_with_backoff_and_resumes_its_batch(stripe_fake, proxy):
    account = connected_account()
    affiliate = _affiliate(method="stripe_connect", stripe_account_id=account.id)
    _earn(affiliate, 6000)
    # The task's first run fails (three attempts by the client); its retry gets through.
    proxy.fail("error", count=RETRIES + 1, method="POST", path="/v1/transfers")

    # In-process, the retry runs at once instead of after its countdown (a worker waits it).
    result = affiliate_payouts_run.apply(kwargs={"as_of": AS_OF.isoformat()}, throw=False)

    batch = PayoutBatch.objects.get(pk=result.get())
    assert (batch.status, batch.as_of) == (PayoutBatch.Status.COMPLETED, AS_OF)
    assert [a.outcome for a in proxy.requests("POST", "/v1/transfers")] == ["error"] * 3 + ["pass"]
    assert len(set(keys(proxy, "POST", "/v1/transfers"))) == 1
    with straight_to(stripe_fake):
        assert [t.amount for t in stripe.Transfer.list(destination=account.id).data] == [6000]
    assert Transaction.objects.filter(source=PAYOUT_SOURCE).count() == 1
    assert PayoutBatch.objects.count() == 1


def test_a_payout_task_retry_pins_the_day_and_backs_off(stripe_fake, proxy):
    """The retry resumes the failed day's batch even after midnight, later each time."""

    class CeleryTask:  # what payout_batch_run_or_retry uses of a bound Celery task
        def __init__(self, retries: int) -> None:
            self.request = SimpleNamespace(retries=retries)
            self.asked: dict = {}

        def retry(self, **options):
            self.asked = options
            return Retry()

    account = connected_account()
    affiliate = _affiliate(method="stripe_connect", stripe_account_id=account.id)
    _earn(affiliate, 6000)
    proxy.fail("refuse")
    countdowns = []
    for retries in (0, 2, 9):
        task = CeleryTask(retries)
        with pytest.raises(Retry):
            payout_batch_run_or_retry(task, payee_type="affiliate", as_of=AS_OF)
        assert task.asked["kwargs"] == {"as_of": AS_OF.isoformat()}
        assert isinstance(task.asked["exc"], StripeUnavailable)
        assert task.asked["max_retries"] == PAYOUT_TASK_MAX_RETRIES
        countdowns.append(task.asked["countdown"])
    assert countdowns == [60, 240, 3600]
    assert Payout.objects.get().status == Payout.Status.PENDING


# --- API requests that call Stripe: 503, nothing committed ---------------------------------


@pytest.mark.parametrize("failure", FAILURES)
def test_buying_a_licence_while_stripe_is_down_is_a_503_and_buys_once_after(
    stripe_fake, proxy, failure
):
    buyer = UserFactory(password=None)
    billing_customer_ensure(user=buyer)  # so the PaymentIntent is the call that fails
    license_type = LicenseTypeFactory()
    proxy.fail(failure)

    started = time.monotonic()
    response = _buy(buyer, license_type)

    _assert_unavailable(response, started)
    assert not License.objects.exists()
    assert not Transaction.objects.exists()
    proxy.heal()
    with straight_to(stripe_fake):
        assert stripe.PaymentIntent.list(limit=10).data == []

    again = _buy(buyer, license_type)

    assert again.status_code == 201, again.content
    assert again.json()["status"] == "active"
    with straight_to(stripe_fake):
        assert len(stripe.PaymentIntent.list(limit=10).data) == 1
    assert Transaction.objects.filter(source=SALE_SOURCE).count() == 1


def test_a_licence_payment_whose_answer_is_lost_once_is_charged_once(stripe_fake, proxy):
    buyer = UserFactory(password=None)
    billing_customer_ensure(user=buyer)
    license_type = LicenseTypeFactory()
    proxy.fail("lose_answer", count=1)

    response = _buy(buyer, license_type)

    assert response.status_code == 201, response.content
    assert len(keys(proxy, "POST", "/v1/payment_intents")) == 2
    assert len(set(keys(proxy, "POST", "/v1/payment_intents"))) == 1
    with straight_to(stripe_fake):
        assert len(stripe.PaymentIntent.list(limit=10).data) == 1
    assert License.objects.get().status == License.Status.ACTIVE
    assert Transaction.objects.filter(source=SALE_SOURCE).count() == 1


def test_a_licence_charged_while_every_answer_was_lost_is_refunded_once(stripe_fake, proxy):
    """Stripe charged, we never heard: 503 and no licence; the payment's event refunds it,
    once however often it arrives."""
    buyer = UserFactory(password=None)
    billing_customer_ensure(user=buyer)
    license_type = LicenseTypeFactory()
    proxy.fail("lose_answer")

    started = time.monotonic()
    response = _buy(buyer, license_type)

    _assert_unavailable(response, started)
    assert not License.objects.exists()
    assert not Transaction.objects.exists()
    proxy.heal()
    with straight_to(stripe_fake):
        (intent,) = stripe.PaymentIntent.list(limit=10).data
        assert intent.status == "succeeded"
        feed = EventFeed()
        events = feed.new_events()
    succeeded = [e for e in events if e["type"] == "payment_intent.succeeded"]
    assert len(succeeded) == 1

    for _ in range(2):  # a redelivery changes nothing
        djm.Event.process(succeeded[0])

    with straight_to(stripe_fake):
        refunds = stripe.Refund.list(payment_intent=intent.id).data
    assert [r.amount for r in refunds] == [intent.amount]
    assert len(set(keys(proxy, "POST", "/v1/refunds"))) == 1
    assert not Transaction.objects.filter(source__in=[SALE_SOURCE, LICENSE_REFUND_SOURCE]).exists()


@pytest.mark.parametrize("failure", [*FAILURES, "lose_answer"])
def test_paying_an_order_while_stripe_is_down_is_a_503_and_paying_again_charges_once(
    stripe_fake, proxy, failure
):
    order = order_in("requested", price=10000)
    client = client_for(order.buyer)
    url = f"/api/v1/marketplace/orders/{order.pk}/pay"
    proxy.fail(failure)

    started = time.monotonic()
    response = client.post(url, {"payment_method": "pm_card_visa"}, "json")

    _assert_unavailable(response, started)
    order.refresh_from_db()
    assert (order.state, order.stripe_payment_intent_id, order.paid_at) == (
        Order.State.REQUESTED,
        "",
        None,
    )
    assert not Transaction.objects.filter(source=PAID_SOURCE).exists()
    proxy.heal()

    again = client.post(url, {"payment_method": "pm_card_visa"}, "json")

    assert again.status_code == 200, again.content
    assert again.json()["state"] == Order.State.PAID
    # A charge that went through while the answers were lost is the one Stripe replays.
    with straight_to(stripe_fake):
        intents = stripe.PaymentIntent.list(limit=10).data
    assert [i.amount for i in intents] == [10000]
    order.refresh_from_db()
    assert order.stripe_payment_intent_id == intents[0].id
    assert Transaction.objects.filter(source=PAID_SOURCE).count() == 1
    assert len(set(keys(proxy, "POST", "/v1/payment_intents"))) == 1


# --- the staff refund form -----------------------------------------------------------------


def test_a_staff_refund_sent_again_after_an_outage_refunds_once(stripe_fake, proxy, client):
    """The refund is made at Stripe but every answer is lost: staff see Stripe unavailable and
    send the same form again once it is back; Stripe replays the refund, nothing twice."""
    from subscriptions.models import BillingCustomer

    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    feed = EventFeed()
    customer, pm = make_customer(email="payer@example.com")
    subscribe(customer, pm, make_price(unit_amount=2000))
    feed.process_new()
    billing_customer = BillingCustomer.objects.create(
        user=UserFactory(email="payer@example.com"), stripe_customer_id=customer.id
    )
    charge = djm.Charge.objects.get(customer__id=customer.id)
    url = reverse(
        "admin:subscriptions_billingcustomer_action",
        args=[billing_customer.pk, "refund", charge.id],
    )
    token = client.get(url).context["form"].initial["token"]
    data = {"amount": "700", "reason": "requested_by_customer", "token": token}
    proxy.fail("lose_answer")

    failed = client.post(url, data)

    assert failed.status_code == 200  # the same form again, with the error
    assert "not available" in failed.content.decode()
    proxy.heal()
    with straight_to(stripe_fake):
        assert stripe.Charge.retrieve(charge.id)["amount_refunded"] == 700  # made, unheard

    again = client.post(url, data)

    assert again.status_code == 302, again.content.decode()[:2000]
    with straight_to(stripe_fake):
        refunds = stripe.Refund.list(charge=charge.id).data
        assert [r.amount for r in refunds] == [700]
        feed.process_new()
        feed.process_new()
    assert len(set(keys(proxy, "POST", "/v1/refunds"))) == 1
    reversal = Transaction.objects.get(source="subscriptions.refund")
    assert sum(e.amount for e in reversal.entries.all() if e.amount > 0) == 700


# --- invoice items at the usage period close -----------------------------------------------


@pytest.mark.parametrize("failure", ["lose_answer", "hang"])
def test_a_period_close_with_stripe_down_is_retried_later_and_bills_each_line_once(
    stripe_fake, proxy, failure
):
    """Invoice items written while their answers were lost (or never sent while Stripe hung)
    are found, not made again, when the close resumes."""
    plan = ApiPlan.objects.create(code="usage", name="Usage", currency="usd", is_default=True)
    ApiPlanCharge.objects.create(
        plan=plan, meter=api_calls(), price_model="per_unit", unit_amount=Decimal(1)
    )
    tokens = Meter.objects.create(code="tokens", name="Tokens", unit="token", aggregation="sum")
    ApiPlanCharge.objects.create(
        plan=plan, meter=tokens, price_model="per_unit", unit_amount=Decimal(2)
    )
    user = UserFactory()
    customer_id = billing_customer_ensure(user=user)[0].stripe_customer_id
    with straight_to(stripe_fake):
        stripe.PaymentMethod.attach("pm_card_visa", customer=customer_id)
        stripe.Customer.modify(
            customer_id, invoice_settings={"default_payment_method": "pm_card_visa"}
        )
    batch = [event("e1", 300), event("t1", 10, metric="tokens")]
    assert post_events(bearer(key_for(user)), batch).status_code == 202
    start, end = month_bounds(timezone.now())
    after = end + period_close.grace() + timedelta(minutes=1)
    # lose_answer: the first invoice item is made, every answer about it lost; hang: Stripe
    # hangs from the first call (looking for an invoice an earlier attempt made).
    if failure == "lose_answer":
        proxy.fail(failure, method="POST", path="/v1/invoiceitems")
    else:
        proxy.fail(failure)

    failed = period_close.usage_period_close(customer=user, period_start=start, now=after)

    assert failed.status == UsagePeriodClose.Status.INVOICING
    assert failed.attempts == 1 and failed.next_attempt_at > after
    assert not Transaction.objects.exists()
    proxy.heal()
    later = failed.next_attempt_at + timedelta(seconds=1)

    result = period_close.usage_periods_close_due(now=later)

    assert (result.closed, result.failed) == (1, 0)
    close = UsagePeriodClose.objects.get()
    with straight_to(stripe_fake):
        items = list(stripe.InvoiceItem.list(customer=customer_id, limit=100).auto_paging_iter())
        invoices = stripe.Invoice.list(customer=customer_id, limit=10).data
    assert sorted(item.amount for item in items) == [20, 300]
    assert [invoice.id for invoice in invoices] == [close.stripe_invoice_id]
    assert invoices[0].amount_paid == 320
    assert set(close.lines.values_list("stripe_invoice_item_id", flat=True)) == {
        item.id for item in items
    }
    if failure == "lose_answer":
        lost = [
            seen for seen in proxy.requests("POST", "/v1/invoiceitems") if seen.outcome != "pass"
        ]
        assert len(lost) == RETRIES + 1 and len({seen.idempotency_key for seen in lost}) == 1


# --- Stripe's own 500 after a write, saved under the key -----------------------------------


def test_a_transfer_stripe_made_but_answered_500_is_found_by_the_rerun_not_made_again(
    stripe_fake, proxy
):
    """Stripe keeps a 500 under its idempotency key and replays it for 24 hours: a rerun under
    the same key cannot learn that the transfer was made, and one after the key expires would
    make it again. The rerun finds the payout's transfer first."""
    account = connected_account()
    affiliate = _affiliate(method="stripe_connect", stripe_account_id=account.id)
    _earn(affiliate, 6000)
    stripe_fake.fail_next("POST", "/v1/transfers", when="after")  # made, then 500, saved

    with pytest.raises(StripeUnavailable):
        payout_batch_run(payee_type="affiliate", as_of=AS_OF)
    assert Payout.objects.get().status == Payout.Status.PENDING

    batch = payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    assert batch.status == PayoutBatch.Status.COMPLETED
    with straight_to(stripe_fake):
        transfers = stripe.Transfer.list(destination=account.id).data
    assert [t.amount for t in transfers] == [6000]
    assert Payout.objects.get().stripe_transfer_id == transfers[0].id
    assert Transaction.objects.filter(source=PAYOUT_SOURCE).count() == 1
