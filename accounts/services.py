"""Account writes: sign-up and API token issue. Views parse input and call these."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from accounts.models import User

EMAIL_TAKEN_MESSAGE = "A user with this email address already exists."


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
