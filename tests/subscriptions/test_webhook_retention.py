"""Processed webhook inbox rows past WEBHOOK_EVENT_RETENTION_DAYS are deleted in batches;
failed, received and recent rows stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from subscriptions.models import WebhookEvent
from subscriptions.services.inbox import webhook_events_prune
from subscriptions.tasks import webhook_events_prune as webhook_events_prune_task

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 9, 1, 12, tzinfo=UTC)


def row(n: int, status: str, received_days_ago: int) -> WebhookEvent:
    event = WebhookEvent.objects.create(
        stripe_event_id=f"evt_keep_{n}",
        type="customer.updated",
        stripe_created=NOW,
        object_id=f"cus_{n}",
        payload={"id": f"evt_keep_{n}", "object": "event"},
        status=status,
    )
    WebhookEvent.objects.filter(pk=event.pk).update(
        received_at=NOW - timedelta(days=received_days_ago)
    )
    return event


def test_only_processed_rows_past_retention_go(settings):
    settings.WEBHOOK_EVENT_RETENTION_DAYS = 90
    old_done = [row(n, WebhookEvent.Status.SUCCEEDED, 91 + n) for n in range(5)]
    kept = [
        row(10, WebhookEvent.Status.SUCCEEDED, 89),
        row(11, WebhookEvent.Status.FAILED, 300),
        row(12, WebhookEvent.Status.RECEIVED, 300),
        row(13, WebhookEvent.Status.PROCESSING, 300),
    ]

    assert webhook_events_prune(now=NOW, batch_size=2) == len(old_done)

    assert sorted(WebhookEvent.objects.values_list("pk", flat=True)) == sorted(e.pk for e in kept)
    assert webhook_events_prune(now=NOW) == 0


def test_the_beat_task_prunes_with_the_settings(settings):
    settings.WEBHOOK_EVENT_RETENTION_DAYS = 35
    row(1, WebhookEvent.Status.SUCCEEDED, 10_000)
    assert webhook_events_prune_task.apply().get() == 1
