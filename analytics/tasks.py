"""Celery tasks of the analytics app (periodic ones scheduled in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from analytics.services import mrr_snapshots_compute

# Days written per currency and run: a quarter takes seconds even at millions of movements,
# well inside Celery's time limit; a first backfill of years of history takes several hourly
# runs (or one call of ``mrr_snapshots_compute()`` from a shell, which has no bound).
DAYS_PER_RUN = 92


@shared_task(name="analytics.tasks.snapshots_compute")
def snapshots_compute() -> dict[str, list[str]]:
    """Hourly: store the daily MRR snapshots of completed days and recompute the days late
    movements landed in. Returns, per currency, the first and last day written."""
    run = mrr_snapshots_compute(max_days=DAYS_PER_RUN)
    return {
        currency: [first.isoformat(), last.isoformat()]
        for currency, (first, last) in run.days.items()
    }
