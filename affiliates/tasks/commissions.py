"""Commission tasks: approve due commissions (hourly) and the monthly affiliate payout batch."""

from __future__ import annotations

import datetime

from celery import Task, shared_task
from django.utils import timezone

from affiliates.services import commissions
from ledger.tasks import payout_batch_run_or_retry

__all__ = ["affiliate_payouts_run", "commissions_approve_due"]


@shared_task(name="affiliates.tasks.commissions.commissions_approve_due", ignore_result=True)
def commissions_approve_due() -> int:
    return commissions.commissions_approve_due()


@shared_task(
    bind=True, name="affiliates.tasks.commissions.affiliate_payouts_run", ignore_result=True
)
def affiliate_payouts_run(self: Task, as_of: str | None = None) -> int:
    """Pay affiliates' balances as of ``as_of`` (ISO date; default: yesterday, UTC); retried
    with backoff while Stripe is unavailable (``ledger.tasks.payout_batch_run_or_retry``)."""
    day = (
        datetime.date.fromisoformat(as_of)
        if as_of
        else (timezone.now() - datetime.timedelta(days=1)).date()
    )
    return payout_batch_run_or_retry(self, payee_type=commissions.PAYEE_TYPE, as_of=day)
