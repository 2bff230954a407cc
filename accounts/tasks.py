"""Outgoing mail delivery: tasks around ``accounts.mail`` (queued by ``email_queue``)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction

from accounts.mail import email_deliver, email_due_ids

logger = logging.getLogger(__name__)


@shared_task(name="accounts.tasks.email_send", ignore_result=True)
def email_send(email_id: int) -> str:
    """Try to deliver one queued message; failures are recorded, never raised."""
    return email_deliver(email_id=email_id)


@shared_task(name="accounts.tasks.emails_retry_due", ignore_result=True)
def emails_retry_due() -> int:
    """Beat: try again every queued message whose next attempt is due; returns how many."""
    ids = email_due_ids()
    for email_id in ids:
        email_deliver(email_id=email_id)
    return len(ids)


def email_send_on_commit(email_id: int) -> None:
    """Queue delivery once the caller's transaction commits.

    A broker that cannot be reached leaves the message QUEUED for the beat sweep instead of
    raising into the request that committed it.
    """

    def enqueue() -> None:
        try:
            email_send.delay(email_id)
        except Exception:
            logger.warning("could not enqueue email %s; the retry sweep will send it", email_id)

    transaction.on_commit(enqueue)
