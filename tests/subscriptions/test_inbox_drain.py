"""The inbox's processing path stays lean: one claim, one finish, no re-read of the row."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from djstripe import models as djm
from djstripe.signals import WEBHOOK_SIGNALS

from subscriptions.models import WebhookEvent
from subscriptions.services import inbox
from tests.subscriptions.test_inbox import one_fake_event


@pytest.fixture(autouse=True)
def _eager(celery_eager: None) -> None:
    pass


@pytest.fixture
def stolen_claim() -> Iterator[list[str]]:
    """A receiver that, mid-processing, lets "another worker" take the claim over (the lease
    expired, the sweep failed the row and a second worker claimed it: attempts + 1)."""
    calls: list[str] = []

    def receiver(sender: Any, event: Any, **kwargs: Any) -> None:
        WebhookEvent.objects.filter(stripe_event_id=event.id).update(attempts=F("attempts") + 1)
        calls.append(event.id)

    WEBHOOK_SIGNALS["customer.created"].connect(receiver, weak=False)
    try:
        yield calls
    finally:
        WEBHOOK_SIGNALS["customer.created"].disconnect(receiver)


def test_processing_touches_its_row_with_one_claim_and_one_finish(stripe_fake):
    customer = stripe.Customer.create(email="lean@example.com")
    row, _ = inbox.webhook_event_record(data=one_fake_event("customer.created"))

    with CaptureQueriesContext(connection) as ctx:
        event = inbox.webhook_event_process(event_id=row.pk)

    ours = [q["sql"] for q in ctx.captured_queries if WebhookEvent._meta.db_table in q["sql"]]
    assert [sql.split()[0] for sql in ours] == ["UPDATE", "UPDATE"]  # claim, finish; no SELECT
    assert event is not None
    with CaptureQueriesContext(connection) as after:  # the returned row needs no re-read
        returned = (event.pk, event.status, event.attempts, event.last_error, event.processed_at)
        assert event.payload["id"] == row.stripe_event_id
    assert len(after) == 0
    row.refresh_from_db()
    assert returned == (row.pk, WebhookEvent.Status.SUCCEEDED, 1, "", row.processed_at)
    assert djm.Customer.objects.get(id=customer.id).email == "lean@example.com"


def test_success_is_not_marked_on_a_claim_another_worker_took_over(stripe_fake, stolen_claim):
    stripe.Customer.create(email="lease@example.com")
    row, _ = inbox.webhook_event_record(data=one_fake_event("customer.created"))

    inbox.webhook_event_process(event_id=row.pk)

    row.refresh_from_db()
    assert stolen_claim == [row.stripe_event_id]
    # The later claim (attempts 2) owns the row now: the first worker's finish leaves it alone.
    assert (row.status, row.attempts, row.processed_at) == (
        WebhookEvent.Status.PROCESSING,
        2,
        None,
    )
