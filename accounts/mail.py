"""Delivering queued mail: one attempt per call, failures recorded and retried, never raised.

``accounts.services.email_queue`` writes an :class:`~accounts.models.OutgoingEmail` in the
caller's transaction; ``accounts.tasks`` calls :func:`email_deliver` after commit and again
from the beat sweep until it is sent or gives up after ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from accounts.models import OutgoingEmail

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
# 1, 2, 4 … minutes between attempts, at most this long (ten attempts span about 8.5 hours).
MAX_BACKOFF = timedelta(hours=2)
SWEEP_BATCH = 200

EMAILS_SENT = Counter("revenue_emails_sent", "Outgoing emails delivered.", ["purpose"])
EMAIL_FAILURES = Counter(
    "revenue_email_failures",
    "Failed attempts to deliver an outgoing email (each is retried until it gives up).",
    ["purpose"],
)
EMAILS_ABANDONED = Counter(
    "revenue_emails_abandoned",
    "Outgoing emails given up after the last attempt.",
    ["purpose"],
)


def backoff(attempts: int) -> timedelta:
    """The wait before the next attempt after ``attempts`` failed ones."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def email_due_ids(*, limit: int = SWEEP_BATCH) -> list[int]:
    """Queued messages whose next attempt is due, oldest first."""
    return list(
        OutgoingEmail.objects.filter(
            status=OutgoingEmail.Status.QUEUED, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def email_deliver(*, email_id: int) -> str:
    """Make one delivery attempt of a queued, due message; return its status afterwards.

    The row is locked for the attempt (``skip_locked``: a task and the sweep never send one
    message twice at once). Any exception from the mail backend (SMTP down, refused, timed
    out) is logged, counted and scheduled for retry; this function does not raise it.
    """
    with transaction.atomic():
        email = (
            OutgoingEmail.objects.select_for_update(skip_locked=True)
            .filter(pk=email_id, status=OutgoingEmail.Status.QUEUED)
            .first()
        )
        if email is None:
            return "skipped"
        now = timezone.now()
        if email.next_attempt_at > now:
            return "not_due"
        email.attempts += 1
        message = EmailMessage(email.subject, email.body, email.from_email, list(email.to))
        try:
            message.send(fail_silently=False)
        except Exception as exc:
            EMAIL_FAILURES.labels(purpose=email.purpose).inc()
            email.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if email.attempts >= MAX_ATTEMPTS:
                email.status = OutgoingEmail.Status.FAILED
                EMAILS_ABANDONED.labels(purpose=email.purpose).inc()
                logger.error(
                    "email %s (%s) abandoned after %s attempts: %s",
                    email.pk, email.purpose, email.attempts, email.last_error,
                )  # fmt: skip
            else:
                email.next_attempt_at = now + backoff(email.attempts)
                logger.warning(
                    "email %s (%s) attempt %s failed, retrying at %s: %s",
                    email.pk, email.purpose, email.attempts,
                    email.next_attempt_at.isoformat(), email.last_error,
                )  # fmt: skip
        else:
            email.status = OutgoingEmail.Status.SENT
            email.sent_at = now
            email.last_error = ""
            EMAILS_SENT.labels(purpose=email.purpose).inc()
        email.save(update_fields=["attempts", "status", "sent_at", "last_error", "next_attempt_at"])
        return email.status
