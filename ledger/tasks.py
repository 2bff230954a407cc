"""Periodic ledger checks (scheduled in settings.CELERY_BEAT_SCHEDULE), and the retry policy of
the apps' payout tasks."""

from __future__ import annotations

import logging
from datetime import date

from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval

from ledger.payouts import payout_batch_run
from ledger.selectors import trial_balance
from revenue_site.stripe_errors import StripeUnavailable

# A payout task that finds Stripe unavailable tries again after 1, 2, 4 ... minutes, at most an
# hour apart, 10 times (about 8 hours): the monthly batch should not wait for a month.
PAYOUT_TASK_MAX_RETRIES = 10
PAYOUT_TASK_BACKOFF_SECONDS = 60
PAYOUT_TASK_BACKOFF_MAX_SECONDS = 3600

logger = logging.getLogger(__name__)


@shared_task(name="ledger.tasks.trial_balance_check")
def trial_balance_check() -> dict[str, int]:
    """Log an error for every currency whose entries do not sum to zero; return those."""
    imbalances = {currency: total for currency, total in trial_balance().items() if total}
    for currency, total in sorted(imbalances.items()):
        logger.error(
            "ledger trial balance is off by %s minor units in %s",
            total,
            currency,
            extra={"currency": currency, "imbalance": total},
        )
    return imbalances


def payout_batch_run_or_retry(task: Task, *, payee_type: str, as_of: date) -> int:
    """Run (or resume) ``payee_type``'s batch as of ``as_of`` and return its id; while Stripe is
    unavailable, retry ``task`` later with exponential backoff (the constants above).

    Safe to repeat: the batch resumes where it stopped (paid payouts stay paid, the pending
    one replays its transfer under the same idempotency key). ``as_of`` is pinned in the retry,
    so a retry after midnight resumes this batch rather than starting the next day's. After
    the last retry the task fails with ``StripeUnavailable``; staff (or ``run_payouts``) resume
    the batch.
    """
    try:
        return payout_batch_run(payee_type=payee_type, as_of=as_of).pk
    except StripeUnavailable as exc:
        retries = task.request.retries or 0
        countdown = get_exponential_backoff_interval(
            factor=PAYOUT_TASK_BACKOFF_SECONDS,
            retries=retries,
            maximum=PAYOUT_TASK_BACKOFF_MAX_SECONDS,
            full_jitter=False,
        )
        logger.warning(
            "%s payouts as of %s: Stripe unavailable (%s); retry %s in %ss",
            payee_type,
            as_of,
            exc.message,
            retries + 1,
            countdown,
        )
        raise task.retry(
            exc=exc,
            kwargs={"as_of": as_of.isoformat()},
            countdown=countdown,
            max_retries=PAYOUT_TASK_MAX_RETRIES,
        ) from exc
