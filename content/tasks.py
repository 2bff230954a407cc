"""Content's periodic tasks (the beat schedule is in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from content import licensing


@shared_task(name="content.tasks.licenses_expire_due")
def licenses_expire_due() -> int:
    """Mark licences past their ``expires_at`` EXPIRED (idempotent)."""
    return licensing.licenses_expire_due()
