"""Celery tasks of the webhook inbox (scheduled ones are in settings.CELERY_BEAT_SCHEDULE).

Tasks take ids and call a service in subscriptions.services.inbox; they hold no rules.
"""

from __future__ import annotations

from celery import shared_task

from subscriptions.services import inbox


@shared_task(
    name="subscriptions.tasks.webhook_event_process",
    autoretry_for=(inbox.WebhookEventProcessingError,),
    retry_backoff=int(inbox.BACKOFF_BASE.total_seconds()),
    retry_backoff_max=int(inbox.BACKOFF_MAX.total_seconds()),
    retry_jitter=False,
    max_retries=5,
)
def webhook_event_process(event_id: int) -> str | None:
    """Process one stored webhook event; None when another worker had it or it was done."""
    event = inbox.webhook_event_process(event_id=event_id)
    return event.status if event is not None else None


@shared_task(name="subscriptions.tasks.webhook_events_retry_due")
def webhook_events_retry_due() -> int:
    """Queue failed events whose backoff passed, lost enqueues and events of dead workers."""
    return inbox.webhook_events_retry_due()


@shared_task(name="subscriptions.tasks.stripe_reconcile")
def stripe_reconcile() -> dict[str, int]:
    """Record and process Stripe events created since the last sweep that we never received."""
    result = inbox.stripe_reconcile()
    return {"listed": result.listed, "recorded": result.recorded}
