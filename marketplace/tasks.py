"""Celery tasks of API billing (periodic ones scheduled in settings.CELERY_BEAT_SCHEDULE): take
ids, re-read rows, call a service."""

from __future__ import annotations

from celery import shared_task

from marketplace import period_close, usage_store
from marketplace.models import UsagePeriodClose

PARTITION_MONTHS_AHEAD = 3


@shared_task(name="marketplace.tasks.usage_periods_close_due")
def usage_periods_close_due() -> dict[str, int]:
    """Hourly: close every customer's period past its end plus the grace, and resume closes
    whose retry is due."""
    result = period_close.usage_periods_close_due()
    return {
        "closed": result.closed,
        "failed": result.failed,
        "nothing_to_bill": result.nothing_to_bill,
    }


@shared_task(name="marketplace.tasks.usage_period_close_retry")
def usage_period_close_retry(close_id: int) -> str:
    close = UsagePeriodClose.objects.select_related("customer").get(pk=close_id)
    return period_close.usage_period_close_retry(close=close).status


@shared_task(name="marketplace.tasks.usage_partitions_ensure")
def usage_partitions_ensure() -> list[str]:
    """Create the usage events' month partitions ahead (PostgreSQL); the names created."""
    return usage_store.usage_partitions_ensure(months_ahead=PARTITION_MONTHS_AHEAD)


@shared_task(name="marketplace.tasks.orders_auto_accept_due")
def orders_auto_accept_due() -> dict[str, int]:
    """Hourly: accept delivered orders past ``MARKETPLACE_AUTO_ACCEPT_DAYS`` and release every
    accepted order (also those whose release waited on Stripe)."""
    from marketplace import orders

    result = orders.orders_auto_accept_due()
    return {
        "accepted": result.accepted,
        "released": result.released,
        "transferred": result.transferred,
        "failed": result.failed,
    }


@shared_task(name="marketplace.tasks.usage_events_prune", ignore_result=True)
def usage_events_prune() -> dict[str, int]:
    """Daily: raw usage events of months past USAGE_EVENT_RETENTION_DAYS (rollups kept)."""
    result = usage_store.usage_events_prune()
    return {
        "partitions_dropped": len(result.partitions_dropped),
        "events_deleted": result.events_deleted,
        "keys_deleted": result.keys_deleted,
    }
