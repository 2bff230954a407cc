"""Click buffer flush (beat, every 10 s): Redis-buffered clicks into the Click table."""

from __future__ import annotations

from celery import shared_task

from affiliates.services import retention, tracking

__all__ = ["clicks_flush", "clicks_prune"]


@shared_task(name="affiliates.tasks.tracking.clicks_flush", ignore_result=True)
def clicks_flush() -> int:
    return tracking.click_buffer_flush()


@shared_task(name="affiliates.tasks.tracking.clicks_prune", ignore_result=True)
def clicks_prune() -> int:
    """Daily: clicks past CLICK_RETENTION_DAYS rolled up per link and day, then deleted."""
    return retention.clicks_prune()
