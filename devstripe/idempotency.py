"""Idempotent requests, as Stripe keeps them: a POST with an ``Idempotency-Key`` is run once.

Stripe saves the result of the first request with a given key (per API key and account) for
24 hours and replays it, status and body, to every later request with that key, adding the
header ``Idempotent-Replayed: true``; the same key with other parameters (or another endpoint)
is refused with 400 ``idempotency_error``, and a request arriving while the first is still
running gets 409 ``idempotency_error`` (which the stripe client retries). That is what makes a
client's retry after a timeout or a 500 safe, so it is kept here too: localstripe ignores the
header and a retry would create a second object.

Unlike Stripe, a request that fails validation (a 400 raised by localstripe) is saved as well:
localstripe validates while it runs, so the two cannot be told apart; a retry of such a
request fails the same way in both. The saved results live in :data:`saved` and are written
to the state file with the objects (``resources.py``); ``DELETE /_config/data`` forgets them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class SavedResponse:
    fingerprint: str
    status: int
    body: bytes
    content_type: str
    saved_at: float


# (scope: API key and Stripe-Account, idempotency key) -> the first request's result.
saved: dict[tuple[str, str], SavedResponse] = {}
# Keys whose first request is still running.
in_flight: set[tuple[str, str]] = set()


def fingerprint(method: str, path: str, query: str, body: bytes, content_type: str) -> str:
    """What makes two requests "the same": method, path and their parameters in any order."""
    if content_type == "application/json":
        try:
            params: object = json.loads(body or b"null")
        except ValueError:
            params = body.decode(errors="replace")
        encoded = json.dumps(params, sort_keys=True)
    else:
        pairs = parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
        encoded = json.dumps(sorted(pairs))
    query_pairs = sorted(parse_qsl(query, keep_blank_values=True))
    raw = json.dumps([method.upper(), path, query_pairs, encoded]).encode()
    return hashlib.sha256(raw).hexdigest()


def lookup(scope_key: tuple[str, str], now: float | None = None) -> SavedResponse | None:
    """The saved result for ``scope_key`` unless it has expired (expired ones are dropped)."""
    now = time.time() if now is None else now
    result = saved.get(scope_key)
    if result is not None and now - result.saved_at > TTL_SECONDS:
        del saved[scope_key]
        return None
    return result


def save(scope_key: tuple[str, str], response: SavedResponse) -> None:
    if len(saved) % 1000 == 999:  # now and then, drop what has expired
        for key in [k for k, v in saved.items() if response.saved_at - v.saved_at > TTL_SECONDS]:
            del saved[key]
    saved[scope_key] = response


def forget_all() -> None:
    saved.clear()
    in_flight.clear()
