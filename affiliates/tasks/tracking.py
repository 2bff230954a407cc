"""Click buffer flush (beat, every 10 s): Redis-buffered clicks into the Click table."""

from __future__ import annotations

from celery import shared_task

from affiliates.services import tracking

__all__ = ["clicks_flush"]


@shared_task(name="affiliates.tasks.tracking.clicks_flush", ignore_result=True)
def clicks_flush() -> int:
    return tracking.click_buffer_flush()
