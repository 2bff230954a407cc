"""Failed-login counting and lockout, kept in the cache per (client IP, username).

Every failed authentication (staff console or API token) is logged on ``accounts.security``
and counted; the staff console login refuses further attempts, even with the right password,
once STAFF_LOGIN_MAX_FAILURES failures fall within STAFF_LOGIN_WINDOW_SECONDS. The window is
fixed from the first failure: the counter expires with it.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger("accounts.security")

LOCKOUT_MESSAGE = (
    "Too many failed login attempts for this account from your address. "
    "Try again in %(minutes)d minutes."
)


def client_ip(request: HttpRequest | None) -> str:
    """The caller's address, honouring DJANGO_NUM_PROXIES exactly as the API throttles do."""
    if request is None:
        return "-"
    # get_ident only reads request.META, which a plain HttpRequest has too.
    return str(BaseThrottle().get_ident(request) or "-")  # type: ignore[arg-type]


def _key(*, ip: str, username: str) -> str:
    digest = hashlib.sha256(f"{ip}|{username.strip().lower()}".encode()).hexdigest()
    return f"accounts:login-failures:{digest}"


def login_failure_record(*, ip: str, username: str) -> int:
    """Count one failed login and log it (never the password); return failures in the window."""
    key = _key(ip=ip, username=username)
    # add() starts the window only if none is running; incr() keeps its expiry.
    cache.add(key, 0, timeout=settings.STAFF_LOGIN_WINDOW_SECONDS)
    try:
        # None: the cache is down (its errors are ignored); nothing is counted meanwhile.
        failures = int(cache.incr(key) or 0)
    except ValueError:  # expired between add() and incr()
        cache.set(key, 1, timeout=settings.STAFF_LOGIN_WINDOW_SECONDS)
        failures = 1
    logger.warning(
        "login failed for %s from %s (%d in window)",
        username,
        ip,
        failures,
        extra={"ip": ip, "username": username, "failures": failures},
    )
    return failures


def login_is_locked(*, ip: str, username: str) -> bool:
    failures = cache.get(_key(ip=ip, username=username)) or 0
    return int(failures) >= settings.STAFF_LOGIN_MAX_FAILURES


def login_failures_clear(*, ip: str, username: str) -> None:
    cache.delete(_key(ip=ip, username=username))


def lockout_message() -> str:
    return LOCKOUT_MESSAGE % {"minutes": max(1, settings.STAFF_LOGIN_WINDOW_SECONDS // 60)}
