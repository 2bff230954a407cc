"""Login signals: log and count failures, clear the count after a success."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from accounts import security
from accounts.models import User


def _username(credentials: dict[str, Any]) -> str:
    value = credentials.get(User.USERNAME_FIELD) or credentials.get("username") or ""
    return str(value)[:254]


@receiver(user_login_failed, dispatch_uid="accounts.login_failed")
def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # `credentials` has the password already masked by Django; only the username is read.
    security.login_failure_record(ip=security.client_ip(request), username=_username(credentials))


@receiver(user_logged_in, dispatch_uid="accounts.logged_in")
def on_logged_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    if request is not None:
        security.login_failures_clear(ip=security.client_ip(request), username=user.email)
