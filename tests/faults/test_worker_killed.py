"""A Celery worker killed with SIGKILL in the middle of money work (issue 14, faults): once a
worker runs again, everything completes exactly once — no ledger transaction, payout, Stripe
transfer or invoice item missing or doubled (Stripe's side counted through the ``stripe``
client on the fake).

Each test runs a real prefork worker (``tests/faults/killable.py``) on the committed test
database, the suite's Redis and a private fake Stripe, and stops the task where it hurts:

- after Stripe did the write and before our transaction committed (the nasty case: the retry
  must find or replay it, through idempotency keys or a lookup), by holding a row lock the task
  needs for its next statement, then ``kill -9``;
- inside the Stripe call (the fake stopped with SIGSTOP, the request unread on its socket),
  then ``kill -9`` and SIGCONT: the fake runs the request for a client that is gone.

Both ways of dying are covered: the whole worker (the message waits in Redis for the visibility
timeout, ``CELERY_VISIBILITY_TIMEOUT``, 1 s here, and a restarted worker takes it) and only
the pool child (``acks_late`` + ``reject_on_worker_lost``: the message goes back to the queue
at once and the same worker runs it again).

PostgreSQL and Redis only (a worker process needs a database and a broker it shares with the
test); skipped on SQLite or without REDIS_URL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import stripe
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from affiliates.models import Referral
from affiliates.services.commissions import commission_accrue, commissions_approve_due
from ledger.chart import SystemAccount
from ledger.models import PayeeProfile, Payout, PayoutBatch, Transaction
from ledger.selectors import account_balance, payee_balance, trial_balance
from ledger.services import system_account
from marketplace import orders
from marketplace.models import (
    ApiPlan,
    ApiPlanCharge,
    Meter,
    Order,
    UsageChargeLine,
    UsagePeriodClose,
    month_bounds,
)
from subscriptions.models import WebhookEvent
from subscriptions.services import inbox
from subscriptions.services.billing import billing_customer_ensure
from subscriptions.tasks import webhook_event_process_on_commit
from tests.accounts.factories import UserFactory
from tests.affiliates.factories import AffiliateFactory, ProgramFactory
from tests.faults.killable import (
    RowLocks,
    Worker,
    broker_purge,
    fake_has_unread_request,
    wait_until,
)
from tests.marketplace.factories_orders import (
    OrderListingFactory,
    OrderPackageFactory,
    OrderProviderFactory,
    order_in,
)
from tests.marketplace.helpers import bearer, event, key_for, post_events
from tests.stripe_harness import (
    BASE_DIR,
    _free_port,
    connected_account,
    make_webhook_endpoint,
    post_signed_event,
)
from tests.subscriptions.effects_helpers import make_customer, make_price, subscribe

pytestmark = [
    pytest.mark.fault,
    pytest.mark.slow,
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="kills a real Celery worker: needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)",
    ),
    pytest.mark.django_db(transaction=True),
]

CLEARING = SystemAccount.STRIPE_CLEARING.value
LOCK_ACCOUNT = "SELECT id FROM ledger_account WHERE code = %s FOR UPDATE"


# --- fixtures --------------------------------------------------------------------------------


class PrivateFake:
    """A fake Stripe of this module's own, so stopping it (SIGSTOP) leaves the suite's alone."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="devstripe-fault-", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstripe", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=BASE_DIR,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

        def healthy() -> bool:
            try:
                urllib.request.urlopen(self.url + "/_config/health", timeout=2).close()
            except OSError:
                return False
            return True

        wait_until(healthy, "the private fake Stripe", 20)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture(scope="module")
def private_fake() -> Iterator[PrivateFake]:
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("needs PostgreSQL and Redis")
    fake = PrivateFake()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def devstripe_url(private_fake: PrivateFake) -> str:
    """``stripe_fake`` (tests/stripe_harness.py) on the private fake."""
    return private_fake.url


@pytest.fixture
def locks(transactional_db: None) -> Iterator[RowLocks]:
    held = RowLocks()
    yield held
    held.close()  # before the database is flushed (TRUNCATE would wait for these locks)


@pytest.fixture
def worker(
    transactional_db: None, stripe_fake, private_fake: PrivateFake, locks: RowLocks
) -> Iterator[Worker]:
    """A worker, not started yet (``worker.start()``); killed and its queue purged after."""
    broker_purge()
    runner = Worker(stripe_url=private_fake.url, extra_env={"USAGE_CLOSE_GRACE_SECONDS": "0"})
    try:
        yield runner
    finally:
        private_fake.resume()
        runner.kill_all()
        locks.close()
        broker_purge()
        runner.stop()


def send(name: str, **kwargs: object) -> None:
    from revenue_site.celery import app

    app.send_task(name, kwargs=kwargs)


def transfers(**filters: object) -> list:
    return list(stripe.Transfer.list(limit=100, **filters).auto_paging_iter())


# --- (a) a payout batch ----------------------------------------------------------------------

AS_OF = date(2026, 2, 28)
EARNED_AT = datetime(2026, 1, 10, 12, tzinfo=UTC)


def _connect_affiliate_owed(amount: int):
    """An affiliate paid through an onboarded Stripe Connect account, owed ``amount`` (an
    approved commission) as of AS_OF; (affiliate, connected account id)."""
    account = connected_account()
    program = ProgramFactory(minimum_payout=1000, hold_days=30, duration="lifetime")
    affiliate = AffiliateFactory(program=program)
    PayeeProfile.objects.create(
        payee_type="affiliate",
        payee_id=affiliate.pk,
        method=PayeeProfile.Method.STRIPE_CONNECT,
        stripe_account_id=account.id,
        stripe_payouts_enabled=True,
    )
    referral = Referral.objects.create(
        affiliate=affiliate,
        stripe_customer_id=f"cus_fault{affiliate.pk}",
        source="code",
        referred_at=EARNED_AT,
    )
    commission = commission_accrue(
        invoice={
            "id": f"in_fault{affiliate.pk}",
            "customer": referral.stripe_customer_id,
            "amount_paid": amount * 5,  # the program's default 20 %
            "currency": "usd",
            "status_transitions": {"paid_at": int(EARNED_AT.timestamp())},
        },
        occurred_at=EARNED_AT,
    )
    assert commission is not None and commission.amount == amount
    commissions_approve_due(now=EARNED_AT + timedelta(days=31))
    system_account(CLEARING)  # exists before the test locks it
    return affiliate, account.id


def _assert_paid_once(affiliate, account_id: str, amount: int) -> None:
    batch = PayoutBatch.objects.get(payee_type="affiliate", as_of=AS_OF)
    assert batch.status == PayoutBatch.Status.COMPLETED
    payout = batch.payouts.get()
    sent = transfers(destination=account_id)
    assert [t.amount for t in sent] == [amount]  # one transfer in Stripe, not two
    assert (payout.status, payout.stripe_transfer_id) == (Payout.Status.PAID, sent[0].id)
    postings = Transaction.objects.filter(source="ledger.payout")
    assert [p.idempotency_key for p in postings] == [f"payout:{payout.pk}"]
    assert payee_balance(payee_type="affiliate", payee_id=affiliate.pk).get("usd", 0) == 0
    assert account_balance(account=system_account(CLEARING)) == {"usd": -amount}
    assert set(affiliate.commissions.values_list("status", "payout")) == {("paid", payout.pk)}
    assert not any(trial_balance().values())


def test_payout_batch_worker_killed_after_the_transfer_before_commit(worker, locks):
    affiliate, account_id = _connect_affiliate_owed(6000)
    # The payout's posting (after Stripe's transfer, in the payout's transaction) needs the
    # clearing account: holding it stops the task right after Stripe did the write.
    locks.hold(LOCK_ACCOUNT, [CLEARING])
    worker.start()

    send("affiliates.tasks.commissions.affiliate_payouts_run", as_of=AS_OF.isoformat())
    wait_until(locks.waiters, "the payout task to wait for the clearing account")
    assert [t.amount for t in transfers(destination=account_id)] == [6000]  # Stripe did it
    assert Payout.objects.get().status == Payout.Status.PENDING  # our database did not

    worker.kill_all()
    assert locks.end_waiters()  # its connection dies with it: nothing of the payout commits
    locks.release()
    assert Payout.objects.get().status == Payout.Status.PENDING
    time.sleep(1.2)  # past the visibility timeout: the restarted worker takes the message back
    worker.start()

    wait_until(
        lambda: PayoutBatch.objects.filter(status=PayoutBatch.Status.COMPLETED).exists(),
        "the batch to complete after the restart",
    )
    _assert_paid_once(affiliate, account_id, 6000)


def test_payout_batch_pool_child_killed_inside_the_stripe_call(worker, private_fake):
    affiliate, account_id = _connect_affiliate_owed(7000)
    worker.start()

    private_fake.pause()
    send("affiliates.tasks.commissions.affiliate_payouts_run", as_of=AS_OF.isoformat())
    wait_until(lambda: fake_has_unread_request(private_fake.port), "the transfer request")
    worker.kill_child()  # the message goes back to the queue; a new child takes it
    private_fake.resume()  # Stripe now runs the dead child's transfer (a client gone)

    wait_until(
        lambda: PayoutBatch.objects.filter(status=PayoutBatch.Status.COMPLETED).exists(),
        "the batch to complete after the child was replaced",
    )
    _assert_paid_once(affiliate, account_id, 7000)


# --- (d) a marketplace order's release -------------------------------------------------------


def test_order_release_pool_child_killed_after_the_transfer_before_commit(worker, locks):
    provider = OrderProviderFactory(connect=True)
    package = OrderPackageFactory(listing=OrderListingFactory(provider=provider))
    order = order_in(Order.State.ACCEPTED, package=package)  # paid 10000, 15 % commission
    destination = orders.provider_connect_account(provider_id=provider.pk)
    # The release and its transfer are one transaction; the transfer's posting needs the
    # clearing account at commit: holding it stops the task after Stripe's transfer.
    locks.hold(LOCK_ACCOUNT, [CLEARING])
    worker.start()

    send("marketplace.tasks.orders_auto_accept_due")  # the hourly task releases accepted orders
    wait_until(locks.waiters, "the release to wait for the clearing account")
    assert [t.amount for t in transfers(transfer_group=f"order-{order.pk}")] == [8500]
    order.refresh_from_db()
    assert order.state == Order.State.ACCEPTED  # nothing of the release committed

    worker.kill_child()  # the message is back in the queue; the new child waits for the lock
    assert locks.end_waiters()  # the dead child's connection: its transaction rolls back
    locks.release()

    def released() -> bool:
        order.refresh_from_db()
        return order.state == Order.State.RELEASED

    wait_until(released, "the order to be released by the new pool child")
    sent = transfers(transfer_group=f"order-{order.pk}")
    assert [(t.amount, t.destination) for t in sent] == [(8500, destination)]
    assert (order.stripe_transfer_id, order.transferred_amount) == (sent[0].id, 8500)
    assert not order.transfer_pending
    keys = sorted(
        Transaction.objects.filter(
            source__in=[orders.RELEASE_SOURCE, orders.TRANSFER_SOURCE]
        ).values_list("idempotency_key", flat=True)
    )
    assert keys == [f"order:{order.pk}:release", f"order:{order.pk}:transfer"]
    assert payee_balance(payee_type="provider", payee_id=provider.pk).get("usd", 0) == 0
    held = system_account(SystemAccount.LIABILITY_MARKETPLACE_HELD)
    assert account_balance(account=held).get("usd", 0) == 0
    revenue = system_account(SystemAccount.REVENUE_MARKETPLACE)
    assert account_balance(account=revenue) == {"usd": -1500}
    assert not any(trial_balance().values())


# --- (c) a usage period close ----------------------------------------------------------------


def _usage_customer_last_month():
    """A customer with a card on file and usage in the month before this one, on a plan that
    prices it: api_calls 351 - 100 free = 251 x 0.5 → 126, tokens 1500 → 2 packages x 20 → 40."""
    plan = ApiPlan.objects.create(code="usage", name="Usage", currency="usd", is_default=True)
    ApiPlanCharge.objects.create(
        plan=plan,
        meter=Meter.objects.get(code="api_calls"),
        price_model="per_unit",
        unit_amount=Decimal("0.5"),
        free_units=100,
    )
    tokens = Meter.objects.create(code="tokens", name="Tokens", unit="token", aggregation="sum")
    ApiPlanCharge.objects.create(
        plan=plan, meter=tokens, price_model="package", package_size=1000, package_amount=20
    )
    user = UserFactory()
    billing_customer, _ = billing_customer_ensure(user=user)
    customer_id = billing_customer.stripe_customer_id
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer_id)
    stripe.Customer.modify(customer_id, invoice_settings={"default_payment_method": pm.id})
    this_month, _ = month_bounds(timezone.now())
    at = this_month - timedelta(hours=3)  # last month, well inside the events' maximum age
    client = bearer(key_for(user))
    batch = [
        event("e1", 300, at=at),
        event("e2", 51, at=at),
        event("t1", 1500, metric="tokens", at=at),
    ]
    response = post_events(client, batch)
    assert response.status_code == 202, response.content
    return user, customer_id, month_bounds(at)[0]


def test_usage_period_close_worker_killed_after_an_invoice_item_before_saving_it(
    worker, locks, private_fake
):
    user, customer_id, period_start = _usage_customer_last_month()
    # 1. Stop the rating at its commit (its lines' foreign keys to the meters are checked
    #    then), so the test knows when the lines exist.
    locks.hold("SELECT id FROM marketplace_meter FOR UPDATE")
    worker.start()
    send("marketplace.tasks.usage_periods_close_due")  # the hourly task (grace 0 here)
    wait_until(locks.waiters, "the rating to wait for the meters")
    # 2. With Stripe stopped, let the rating commit; the close then waits on Stripe, and the
    #    test locks the lines whose invoice item ids it will save.
    private_fake.pause()
    locks.release()
    lines = UsageChargeLine.objects.filter(period_close__customer=user)
    wait_until(lambda: lines.count() == 2, "the rating to commit its lines")
    assert locks.hold("SELECT id FROM marketplace_usagechargeline FOR UPDATE") == 2
    private_fake.resume()
    # 3. Stripe creates the invoice and the first item; saving the item's id waits for us.
    wait_until(locks.waiters, "the close to wait to save an invoice item's id")
    items = stripe.InvoiceItem.list(customer=customer_id, limit=100).data
    assert [i.amount for i in items] == [126]  # Stripe has it, our rows do not
    assert not lines.exclude(stripe_invoice_item_id="").exists()

    worker.kill_all()
    assert locks.end_waiters()  # the item id's UPDATE dies with the worker's connection
    locks.release()
    assert not lines.exclude(stripe_invoice_item_id="").exists()
    time.sleep(1.2)  # past the visibility timeout: the restarted worker takes the message back
    worker.start()

    close = UsagePeriodClose.objects.get(customer=user, period_start=period_start)

    def billed() -> bool:
        close.refresh_from_db()
        return close.status in (UsagePeriodClose.Status.FINALIZED, UsagePeriodClose.Status.PAID)

    wait_until(billed, "the close to finish after the restart")
    items = list(stripe.InvoiceItem.list(customer=customer_id, limit=100).auto_paging_iter())
    assert sorted(i.amount for i in items) == [40, 126]  # each line invoiced once
    assert {i.id for i in items} == set(lines.values_list("stripe_invoice_item_id", flat=True))
    invoices = stripe.Invoice.list(customer=customer_id, limit=100).data
    assert [i.id for i in invoices] == [close.stripe_invoice_id]
    assert (invoices[0].status, invoices[0].amount_due, close.amount) == ("paid", 166, 166)
    assert close.attempts == 0 and close.last_error == ""


# --- (b) webhook events: the inbox to the ledger ---------------------------------------------


@pytest.mark.parametrize("kill", ["whole_worker", "pool_child"])
def test_webhook_processing_killed_mid_posting(worker, locks, kill):
    price = make_price(unit_amount=2500)
    customer, pm = make_customer()
    subscription = subscribe(customer, pm, price)
    invoice = stripe.Invoice.retrieve(subscription.latest_invoice)
    assert invoice.status == "paid" and invoice.amount_paid == 2500
    events = sorted(
        stripe.Event.list(limit=100).last_response.data["data"], key=lambda e: e["created"]
    )
    endpoint = make_webhook_endpoint()
    for code in SystemAccount:
        system_account(code)  # every account a posting may need exists, so the test can lock it
    # Any posting's entries need their accounts at commit: holding them all stops the first
    # event that books money with its mirror rows and postings written, not committed.
    locks.hold("SELECT id FROM ledger_account ORDER BY id FOR UPDATE")
    worker.start()

    for stripe_event in events:  # as Stripe delivers them; the inbox queues each on commit
        response = post_signed_event(Client(), endpoint, json.dumps(stripe_event).encode())
        assert response.status_code == 200, response.content
    wait_until(locks.waiters, "an event's postings to wait for the ledger accounts")
    stuck = WebhookEvent.objects.get(status=WebhookEvent.Status.PROCESSING)

    if kill == "whole_worker":
        worker.kill_all()
    else:
        worker.kill_child()
    assert locks.end_waiters()  # the event's transaction rolls back with the connection
    locks.release()
    assert WebhookEvent.objects.get(pk=stuck.pk).status == WebhookEvent.Status.PROCESSING
    if kill == "whole_worker":
        time.sleep(1.2)  # past the visibility timeout: the restarted worker takes it back
        worker.start()

    # The dead run's message comes back marked redelivered and takes over the claim it left
    # (no waiting for the ten-minute lease and the retry sweep); the other events follow.
    rows = WebhookEvent.objects.all()
    wait_until(
        lambda: set(rows.values_list("status", flat=True)) == {WebhookEvent.Status.SUCCEEDED},
        "every event to be processed",
    )
    assert rows.count() == len(events) and rows.get(pk=stuck.pk).attempts == 2
    with transaction.atomic():  # nothing left for the sweep, even past every lease
        assert not inbox.webhook_events_retry_due(
            enqueue=webhook_event_process_on_commit,
            now=timezone.now() + inbox.PROCESSING_LEASE + timedelta(seconds=1),
        )
    # Each money movement of those events booked once: the invoice's revenue, the charge's fee.
    charge = stripe.Charge.list(customer=customer.id).data[0]
    postings = sorted(Transaction.objects.values_list("source", "idempotency_key"))
    assert postings == [
        ("subscriptions.invoice_paid", f"stripe:invoice.paid:{invoice.id}"),
        ("subscriptions.stripe_fee", f"stripe:fee:{charge.balance_transaction}"),
    ]
    revenue = Transaction.objects.get(source="subscriptions.invoice_paid").entries.all()
    assert sum(-e.amount for e in revenue if e.amount < 0) == 2500
    assert not any(trial_balance().values())
