"""Periodic ledger checks (scheduled in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging

from celery import shared_task

from ledger.selectors import trial_balance

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
