"""Periodic API billing jobs (scheduled in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from marketplace.usage_store import usage_partitions_ensure

PARTITION_MONTHS_AHEAD = 3


@shared_task(name="marketplace.tasks.usage_partitions_ensure")
def usage_partitions_ensure_task() -> list[str]:
    """Create the usage events' month partitions ahead (PostgreSQL); the names created."""
    return usage_partitions_ensure(months_ahead=PARTITION_MONTHS_AHEAD)
