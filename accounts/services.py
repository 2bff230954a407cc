"""Account writes: sign-up, API token issue and outgoing mail. Views parse input and call these."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.mail import MAX_ATTEMPTS
from accounts.models import OutgoingEmail, User
from accounts.tasks import email_send_on_commit

EMAIL_TAKEN_MESSAGE = "A user with this email address already exists."
# Outgoing mail whose body is a credential (a password reset link): never shown to staff.
PASSWORD_RESET_PURPOSE = "password_reset"  # noqa: S105 - a label, not a password
SECRET_PURPOSES = frozenset({PASSWORD_RESET_PURPOSE})


class InvalidCredentials(Exception):
    """Wrong email, wrong password or inactive user; deliberately not told apart."""


def _normalize_email(email: str) -> str:
    return User.objects.normalize_email(email.strip()).lower()


@transaction.atomic
def user_signup(*, email: str, password: str, name: str = "") -> tuple[User, Token]:
    """Create an active customer user with an API token.

    Raises django ValidationError with field errors: ``password`` when Django's password
    validators refuse it, ``email`` when the address is taken (case-insensitively). The
    duplicate check is the database's unique constraint, not a read first, so two concurrent
    sign-ups for one address cannot both succeed.
    """
    email = _normalize_email(email)
    try:
        validate_password(password, user=User(email=email, name=name))
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    try:
        with transaction.atomic():  # savepoint: the outer transaction stays usable
            user = User.objects.create_user(email=email, password=password, name=name)
    except IntegrityError as exc:
        raise ValidationError({"email": [EMAIL_TAKEN_MESSAGE]}) from exc
    token = Token.objects.create(user=user)
    return user, token


@transaction.atomic
def auth_token_obtain(*, request: HttpRequest | None, email: str, password: str) -> Token:
    """Return the user's API token (created on first use) for valid credentials.

    Raises InvalidCredentials for an unknown email, a wrong password or an inactive user,
    without saying which. Failures go through Django's ``authenticate`` so the
    ``user_login_failed`` signal logs and counts them like any other failed login.
    """
    user = authenticate(request, email=_normalize_email(email), password=password)
    if user is None:
        raise InvalidCredentials
    token, _ = Token.objects.get_or_create(user=user)
    return token


def email_queue(
    *, to: Sequence[str], subject: str, body: str, purpose: str, from_email: str = ""
) -> OutgoingEmail:
    """Queue a plain-text message; it is sent after the caller's transaction commits.

    Every outgoing message goes through here. The row is written in the caller's transaction
    (no mail for a change that rolls back), delivery is a Celery task queued on commit, and a
    failing mail server is retried with backoff by the ``emails_retry_due`` sweep: this never
    raises because of mail, so a request, a seed, a webhook or a payout cannot fail on it.
    """
    recipients = [address for address in to if address]
    email = OutgoingEmail.objects.create(
        purpose=purpose,
        to=recipients,
        from_email=from_email or settings.DEFAULT_FROM_EMAIL,
        subject=" ".join(subject.split())[:255],
        body=body,
    )
    if recipients:
        email_send_on_commit(email.pk)
    else:
        email.status = OutgoingEmail.Status.FAILED
        email.last_error = "no recipient"
        email.save(update_fields=["status", "last_error"])
    return email


@transaction.atomic
def email_retry_now(*, email: OutgoingEmail) -> OutgoingEmail:
    """Queue another attempt at once for a message not sent yet (given up ones included)."""
    row = OutgoingEmail.objects.select_for_update().get(pk=email.pk)
    if row.status == OutgoingEmail.Status.SENT:
        return row
    row.status = OutgoingEmail.Status.QUEUED
    row.next_attempt_at = timezone.now()
    if row.attempts >= MAX_ATTEMPTS:
        row.attempts = MAX_ATTEMPTS - 1  # one more attempt before giving up again
    row.save(update_fields=["status", "next_attempt_at", "attempts"])
    email_send_on_commit(row.pk)
    return row
