"""Content's periodic tasks (the beat schedule is in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import datetime

from celery import Task, shared_task
from django.utils import timezone

from content import acquire, licensing
from content.services import PAYEE_TYPE
from ledger.tasks import payout_batch_run_or_retry


@shared_task(name="content.tasks.licenses_expire_due")
def licenses_expire_due() -> int:
    """Mark licences past their ``expires_at`` EXPIRED (idempotent)."""
    return licensing.licenses_expire_due()


@shared_task(name="content.tasks.pending_licenses_release")
def pending_licenses_release() -> int:
    """Cancel licence payments left unfinished past ``CONTENT_PENDING_PAYMENT_MINUTES`` and
    release their licences (``content.acquire.pending_licenses_release``)."""
    return acquire.pending_licenses_release()


@shared_task(bind=True, name="content.tasks.creator_payouts_run", ignore_result=True)
def creator_payouts_run(self: Task, as_of: str | None = None) -> int:
    """Pay creators' payable balances as of ``as_of`` (ISO date; default: yesterday, UTC),
    less what is still in the hold period (``content.payouts``). Re-running resumes the day's
    batch; returns its id. Retried with backoff while Stripe is unavailable
    (``ledger.tasks.payout_batch_run_or_retry``)."""
    day = (
        datetime.date.fromisoformat(as_of)
        if as_of
        else (timezone.now() - datetime.timedelta(days=1)).date()
    )
    return payout_batch_run_or_retry(self, payee_type=PAYEE_TYPE, as_of=day)
