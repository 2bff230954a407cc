"""Secrets never reach a log line: a logging.Filter that redacts them from every record.

Attached to the console handler (settings.LOGGING: every record our processes write, Django's,
Celery's and stripe-python's included), to `django.server` (runserver's request lines), and by
`gunicorn.conf.py` to gunicorn's access and error logs. What it removes, wherever it appears in
the message, its arguments, the `extra` fields or the exception's text:

- the values of query-string / form / cookie parameters that carry a credential (`?key=` of
  `GET /api/v1/content/licenses/verify`, `token=`, `password=`, `sessionid=`, ...) and JSON
  members with those names;
- our licence keys and API keys after their visible prefix (`lk_1a2b3c4d_…`, `rk_live_…_…`: the
  prefix is what staff and customers see anyway, and it tells keys apart in a log);
- Stripe secret and restricted keys (`sk_live_…`, `rk_test_…`) and webhook signing secrets
  (`whsec_…`), `Authorization` credentials (`Bearer …`, `Token …`, `Basic …`);
- card numbers (13 to 19 digits passing the Luhn check);
- the configured secrets themselves (DJANGO_SECRET_KEY, STRIPE_SECRET_KEY), whatever they look
  like.

An `extra` that is not a plain value (Django's `django.request` passes the request object, whose
text is the full URL with its query string) is replaced by its redacted text. An exception's
text is formatted here and redacted (`exc_text`), so no formatter prints the raw one.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from functools import lru_cache
from typing import Any

REDACTED = "[redacted]"

# Parameter names whose values are credentials (query strings, forms, cookies, JSON members).
_SENSITIVE_NAMES = (
    r"key|api_key|apikey|license_key|licence_key|token|access_token|refresh_token|auth|"
    r"password|password1|password2|new_password1|new_password2|old_password|passwd|secret|"
    r"client_secret|signature|sessionid|session_id|csrftoken|csrfmiddlewaretoken|"
    r"card_number|number|cvc"
)
_PARAM = re.compile(rf"(?i)((?:^|[?&;\s,'\"(])(?:{_SENSITIVE_NAMES})=)[^&;\s'\",)]+")
_JSON_MEMBER = re.compile(rf"(?i)([\"'](?:{_SENSITIVE_NAMES})[\"']\s*:\s*[\"'])[^\"']+")
# (not a key whose secret part the rules above already redacted: its prefix stays readable)
_AUTHORIZATION = re.compile(
    r"(?i)\b(Bearer|Token|Basic)(\s+)(?![A-Za-z0-9._~+/=-]*\[redacted\])[A-Za-z0-9._~+/=-]{6,}"
)
_LICENSE_KEY = re.compile(r"\b(lk_[0-9a-f]{4,})_[A-Za-z0-9_-]{6,}")
_API_KEY = re.compile(r"\b(rk_(?:live|test)_[0-9a-f]{4,})_[A-Za-z0-9_-]{6,}")
# Stripe's keys are longer than our API keys' visible prefix (rk_live_ + 16 hex), which stays.
_STRIPE_KEY = re.compile(r"\b((?:sk|rk)_(?:live|test)_)[A-Za-z0-9]{20,}(?![A-Za-z0-9_])")
_WEBHOOK_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+")
_CARD = re.compile(r"(?<![\d.])\d(?:[ -]?\d){12,18}(?![\d.])")

_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return REDACTED if _luhn(digits) else match.group(0)


@lru_cache(maxsize=1)
def _configured_secrets() -> tuple[str, ...]:
    """The settings' secret values (read once; empty when Django is not configured, as in
    gunicorn's master before the app is loaded)."""
    try:
        from django.conf import settings

        values = (settings.SECRET_KEY, getattr(settings, "STRIPE_SECRET_KEY", ""))
    except Exception:
        return ()
    return tuple(v for v in values if isinstance(v, str) and len(v) >= 8)


_RULES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_LICENSE_KEY, rf"\1_{REDACTED}"),
    (_API_KEY, rf"\1_{REDACTED}"),
    (_STRIPE_KEY, rf"\1{REDACTED}"),
    (_WEBHOOK_SECRET, f"whsec_{REDACTED}"),
    (_AUTHORIZATION, rf"\1\2{REDACTED}"),
    (_PARAM, rf"\1{REDACTED}"),
    (_JSON_MEMBER, rf"\1{REDACTED}"),
    (_CARD, _card),
)


def redact(text: str) -> str:
    """`text` with every secret this module knows replaced by [redacted]."""
    for secret in _configured_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Redacts the record in place (see the module docstring); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = None
        if message is not None:
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        for name, value in list(record.__dict__.items()):
            if name in _RECORD_ATTRS or value is None or isinstance(value, (bool, int, float)):
                continue
            text = value if isinstance(value, str) else _text(value)
            cleaned = redact(text)
            if cleaned != value:
                setattr(record, name, cleaned)
        if record.exc_info:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"
