"""Commission tasks: approve due commissions (hourly) and the monthly affiliate payout batch."""

from __future__ import annotations

import datetime

from celery import shared_task
from django.utils import timezone

from affiliates.services import commissions
from ledger.payouts import payout_batch_run

__all__ = ["affiliate_payouts_run", "commissions_approve_due"]


@shared_task(name="affiliates.tasks.commissions.commissions_approve_due", ignore_result=True)
def commissions_approve_due() -> int:
    return commissions.commissions_approve_due()


@shared_task(name="affiliates.tasks.commissions.affiliate_payouts_run", ignore_result=True)
def affiliate_payouts_run(as_of: str | None = None) -> int:
    """Pay affiliates' balances as of ``as_of`` (ISO date; default: yesterday, UTC)."""
    day = (
        datetime.date.fromisoformat(as_of)
        if as_of
        else (timezone.now() - datetime.timedelta(days=1)).date()
    )
    batch = payout_batch_run(payee_type=commissions.PAYEE_TYPE, as_of=day)
    return batch.pk
