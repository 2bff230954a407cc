"""The webhook inbox under concurrency (PostgreSQL) and with a real Celery worker (Redis)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import stripe
from django.conf import settings
from django.db import connection, connections
from django.test import Client
from djstripe import models as djm
from djstripe.signals import WEBHOOK_SIGNALS

from subscriptions.models import WebhookEvent
from subscriptions.services import inbox
from tests.stripe_harness import make_webhook_endpoint, post_signed_event
from tests.subscriptions.test_inbox import one_fake_event

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row-level concurrency needs PostgreSQL"
)


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[str] = []

    def __call__(self, sender: Any, event: Any, **kwargs: Any) -> None:
        with self.lock:
            self.calls.append(event.id)


@pytest.fixture
def counter():
    receiver = Counter()
    WEBHOOK_SIGNALS["customer.created"].connect(receiver, weak=False)
    yield receiver
    WEBHOOK_SIGNALS["customer.created"].disconnect(receiver)


def _in_threads(n: int, work) -> list[Any]:
    barrier = threading.Barrier(n)

    def run(_i: int) -> Any:
        try:
            barrier.wait(timeout=10)
            return work()
        finally:
            connections.close_all()  # each thread had its own connection

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_deliveries_of_one_event_all_ack_and_take_effect_once(
    stripe_fake, transactional_db, counter
):
    endpoint = make_webhook_endpoint()
    stripe.Customer.create(email="race@example.com")
    event = one_fake_event("customer.created")

    statuses = _in_threads(10, lambda: post_signed_event(Client(), endpoint, event).status_code)

    assert statuses == [200] * 10
    row = WebhookEvent.objects.get()
    if row.status != WebhookEvent.Status.SUCCEEDED:  # REDIS_URL set: tasks wait in the broker
        inbox.webhook_event_process(event_id=row.pk)
        row.refresh_from_db()
    assert row.status == WebhookEvent.Status.SUCCEEDED
    assert row.attempts == 1
    assert djm.Event.objects.filter(id=event["id"]).count() == 1
    assert counter.calls == [event["id"]]


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_ten_workers_racing_for_one_event_process_it_once(stripe_fake, transactional_db, counter):
    stripe.Customer.create(email="claim@example.com")
    row, _ = inbox.webhook_event_record(data=one_fake_event("customer.created"))

    results = _in_threads(10, lambda: inbox.webhook_event_process(event_id=row.pk))

    assert sum(result is not None for result in results) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (WebhookEvent.Status.SUCCEEDED, 1)
    assert len(counter.calls) == 1


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (a real broker)")
@pytest.mark.django_db(transaction=True)
def test_a_posted_event_is_processed_by_a_real_worker_through_redis(
    stripe_fake, transactional_db, celery_redis_worker, counter
):
    endpoint = make_webhook_endpoint()
    customer = stripe.Customer.create(email="worker@example.com")
    event = one_fake_event("customer.created")

    response = post_signed_event(Client(), endpoint, event)

    assert response.status_code == 200
    deadline = time.monotonic() + 20
    row = WebhookEvent.objects.get(stripe_event_id=event["id"])
    while row.status != WebhookEvent.Status.SUCCEEDED and time.monotonic() < deadline:
        time.sleep(0.1)
        row.refresh_from_db()
    assert row.status == WebhookEvent.Status.SUCCEEDED, row.last_error
    assert djm.Customer.objects.get(id=customer.id).email == "worker@example.com"
    assert counter.calls == [event["id"]]
