"""Celery tasks of the webhook inbox (scheduled ones are in settings.CELERY_BEAT_SCHEDULE).

Tasks take ids and call a service in subscriptions.services.inbox; they hold no rules. The
inbox owns retries (attempts, backoff, the ``webhook_events_retry_due`` sweep), so the
processing task does not retry by itself: a failure is recorded on the row and queued again
by the sweep when its backoff has passed.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.db import transaction

from subscriptions.models import WebhookEvent
from subscriptions.services import inbox

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="subscriptions.tasks.webhook_event_process")
def webhook_event_process(self: Task, event_id: int) -> str | None:
    """Process one stored webhook event; its status after, or None when another worker had it
    or it was done. A failure leaves the row FAILED for the inbox's retry sweep. A message
    delivered again after its worker died takes over the claim that worker left."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    try:
        event = inbox.webhook_event_process(event_id=event_id, redelivered=redelivered)
    except inbox.WebhookEventProcessingError:
        return WebhookEvent.Status.FAILED.value
    return event.status if event is not None else None


def webhook_event_process_on_commit(event_id: int) -> None:
    """Queue processing of the row once the current transaction commits.

    A broker failure is logged, not raised: the row is stored, and the retry sweep queues
    RECEIVED rows that nobody picked up.
    """

    def send() -> None:
        try:
            webhook_event_process.delay(event_id)
        except Exception:
            logger.exception("could not queue webhook event %s; the retry sweep will", event_id)

    transaction.on_commit(send)


@shared_task(name="subscriptions.tasks.webhook_events_retry_due")
def webhook_events_retry_due() -> int:
    """Queue failed events whose backoff passed, lost enqueues and events of dead workers."""
    return inbox.webhook_events_retry_due(enqueue=webhook_event_process_on_commit)


@shared_task(name="subscriptions.tasks.stripe_reconcile")
def stripe_reconcile() -> dict[str, int]:
    """Record and process Stripe events created since the last sweep that we never received."""
    result = inbox.stripe_reconcile(enqueue=webhook_event_process_on_commit)
    return {"listed": result.listed, "recorded": result.recorded}


@shared_task(name="subscriptions.tasks.webhook_events_prune", ignore_result=True)
def webhook_events_prune() -> int:
    """Daily: processed inbox rows past WEBHOOK_EVENT_RETENTION_DAYS, in batches."""
    return inbox.webhook_events_prune()
