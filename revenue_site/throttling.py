"""Rate limits for the API: sliding-window counters in the shared cache (Redis in production).

DRF's ``SimpleRateThrottle`` keeps a list of request times per key and reads, trims, pickles
and writes the whole list back on every request: two cache round trips and a list as long as
the rate (6,000 entries for the usage API's default). Here a key has one counter per fixed
window, and a request is weighed against the current window's count plus the previous
window's count scaled by the part of it still inside the sliding window (the estimate
Cloudflare describes for its rate limiting): no burst of twice the rate at a window's edge,
and one command whatever the rate: a Lua script (``INCR``, ``EXPIRE`` when the counter is new,
``GET`` of the previous window), which cost the client 46 µs of CPU per call against 55 µs for
the same three commands pipelined (redis-py, this machine). bench/license_verify.py measures
the verify endpoint with it. Denied requests count too, so a client that keeps hammering stays
limited.

Rates come from ``REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']`` on each request, so settings
overrides and environment changes apply. When the cache cannot be reached the request is let
through and the failure logged: a rate limiter must not take the API down with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

if TYPE_CHECKING:  # rest_framework.views imports the throttle classes named in the settings
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)


def _uses_redis() -> bool:
    return hasattr(cache, "client") and hasattr(cache.client, "get_client")


# KEYS: this window's counter, the previous window's; ARGV: the counter's time to live.
# Atomic, so a new counter always gets its expiry.
_WINDOW_HITS_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, tonumber(redis.call('GET', KEYS[2]) or '0')}
"""
_window_hits_script: Any = None


def window_hits(key: str, window: int, seconds: int) -> tuple[int, int]:
    """Count one request against ``key`` in ``window`` (its index); return the counts of that
    window (this request included) and of the one before it.

    On Redis one command (each counter expires after the window that follows it); on other
    caches ``add``, ``incr`` and ``get`` (the local-memory cache of development and tests)."""
    current, previous = f"{key}:{window}", f"{key}:{window - 1}"
    ttl = 2 * seconds + 1
    if _uses_redis():
        from django_redis import get_redis_connection

        global _window_hits_script
        client = get_redis_connection("default")
        if _window_hits_script is None:
            # EVALSHA by the script's digest; redis-py loads the script on NOSCRIPT.
            _window_hits_script = client.register_script(_WINDOW_HITS_LUA)
        count, before = _window_hits_script(
            keys=[cache.make_key(current), cache.make_key(previous)], args=[ttl], client=client
        )
        return int(count), int(before)
    cache.add(current, 0, ttl)
    try:
        count = int(cache.incr(current))
    except ValueError:  # expired between add and incr
        cache.set(current, 1, ttl)
        count = 1
    return count, int(cache.get(previous) or 0)


V = TypeVar("V")


class _BoundedTable(Generic[V]):
    """A per-process table of at most ``max_keys`` entries, behind a lock. Making room for a
    new key drops the entries ``live`` rejects, and if that frees nothing the table starts
    afresh: a flood of new addresses resets what the table knows, it does not grow the
    worker's memory."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._rows: dict[str, V] = {}
        self._lock = threading.Lock()

    def _make_room(self, live: Callable[[V], bool]) -> None:  # call holding the lock
        if len(self._rows) < self.max_keys:
            return
        self._rows = {k: v for k, v in self._rows.items() if live(v)}
        if len(self._rows) >= self.max_keys:
            self._rows = {}

    def clear(self) -> None:
        with self._lock:
            self._rows = {}


class LocalWindowCounter(_BoundedTable[tuple[int, int, int]]):
    """``window_hits`` kept in this process's memory: no round trip, so no shared limit (each
    gunicorn worker counts on its own). For limits that guard capacity rather than secrets.
    Bounded (``_BoundedTable``): keys not hit in this window or the one before go first."""

    def __init__(self, max_keys: int = 100_000) -> None:
        super().__init__(max_keys)  # rows: key -> (window, count, count of the window before)

    def hit(self, key: str, window: int) -> tuple[int, int]:
        with self._lock:
            found = self._rows.get(key)
            if found is None:
                self._make_room(lambda row: row[0] >= window - 1)
                count, before = 1, 0
            elif found[0] == window:
                count, before = found[1] + 1, found[2]
            else:
                count, before = 1, found[1] if found[0] == window - 1 else 0
            self._rows[key] = (window, count, before)
            return count, before


class LocalBlocks(_BoundedTable[float]):
    """Keys blocked until a time (``time.time()``), as this process learnt it. Bounded
    (``_BoundedTable``): blocks already over go first."""

    def __init__(self, max_keys: int = 10_000) -> None:
        super().__init__(max_keys)

    def wait(self, key: str, now: float) -> float | None:
        """Seconds the key is still blocked for, or None."""
        until = self._rows.get(key)
        if until is None:
            return None
        if until <= now:
            with self._lock:
                self._rows.pop(key, None)
            return None
        return until - now

    def block(self, key: str, until: float) -> None:
        with self._lock:
            if key not in self._rows:
                now = time.time()
                self._make_room(lambda blocked_until: blocked_until > now)
            self._rows[key] = until


class SlidingWindowRateThrottle(SimpleRateThrottle):
    """A scoped rate (``scope`` names the entry in DEFAULT_THROTTLE_RATES) over a sliding
    window. Subclasses say whose requests are counted with ``get_cache_key``."""

    num_requests: int  # parsed from the rate by SimpleRateThrottle (untyped in the stubs)
    duration: int

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return None if rate is None else str(rate)

    def allow_request(self, request: Request, view: APIView) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window, elapsed = divmod(self.now, self.duration)
        self.window_end = self.now - elapsed + self.duration
        try:
            count, before = self.hits(self.key, int(window), int(self.duration))
        except Exception:  # the cache is down: let the request through, say so
            logger.warning(
                "rate limit %s not counted: cache unavailable", self.scope, exc_info=True
            )
            return True
        self.count, self.before, self.elapsed = count, before, elapsed
        return count + before * (1 - elapsed / self.duration) <= self.num_requests

    def hits(self, key: str, window: int, seconds: int) -> tuple[int, int]:
        """Count this request; the counts of its window and of the one before (shared)."""
        return window_hits(key, window, seconds)

    def wait(self) -> float:
        """Seconds until one more request would pass if none were sent meanwhile: later in
        this window once the previous window's share has shrunk enough, else in the next
        window once this one's has."""
        limit, duration = self.num_requests, self.duration
        if self.count + 1 <= limit:
            share_left = (limit - self.count - 1) / self.before if self.before else 1.0
            return max(0.0, duration * (1 - share_left) - self.elapsed)
        share_left = (limit - 1) / self.count
        return (self.window_end - self.now) + duration * max(0.0, 1 - share_left)


class PerIpRateThrottle(SlidingWindowRateThrottle):
    """Per client address (``REST_FRAMEWORK['NUM_PROXIES']`` decides which one)."""

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AnonRateThrottle(PerIpRateThrottle):
    """DRF's ``anon`` rate, per address, for requests without a user."""

    scope = "anon"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return super().get_cache_key(request, view)


class UserRateThrottle(SlidingWindowRateThrottle):
    """DRF's ``user`` rate, per signed-in user (per address for anonymous requests)."""

    scope = "user"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            ident = str(request.user.pk)
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class LocalPerIpRateThrottle(PerIpRateThrottle):
    """Per client address, counted in this process only (``LocalWindowCounter``): a worker
    lets each address through at the rate, so N workers let up to N times the rate through."""

    counter = LocalWindowCounter()

    def hits(self, key: str, window: int, seconds: int) -> tuple[int, int]:
        return self.counter.hit(key, window)


_IDENT = BaseThrottle()  # get_ident: the client's address (NUM_PROXIES), no state


class FailureLimit:
    """A limit on failures per address (``throttle``, counted in the shared cache by every
    worker), and a block of everything the address sends once it is over, kept in each
    worker's memory (``LocalBlocks``): the refusal costs no round trip, and only failures
    pay one. A worker learns of a block on the address's next failure, so an address gets
    at most one more failure per worker than the limit. For secrets that can be guessed
    (licence keys): once over, even a right guess is refused, so a hit tells nothing.

    ``request`` may be Django's or DRF's (only ``META`` is read)."""

    def __init__(self, throttle: type[PerIpRateThrottle], max_addresses: int = 10_000) -> None:
        self.throttle = throttle
        self.blocks = LocalBlocks(max_addresses)

    def refused(self, request: HttpRequest | Request) -> Throttled | None:
        """Throttled while this worker knows the address to be over the limit, else None."""
        ident = _IDENT.get_ident(request)  # type: ignore[arg-type]  # reads META only
        wait = self.blocks.wait(ident, time.time())
        return None if wait is None else Throttled(wait)

    def failed(self, request: HttpRequest | Request) -> Throttled | None:
        """Count one failure; Throttled (and the address blocked in this worker) when that is
        over the limit, else None."""
        throttle = self.throttle()
        if throttle.allow_request(request, None):  # type: ignore[arg-type]  # reads META only
            return None
        wait = throttle.wait()
        self.blocks.block(throttle.get_ident(request), time.time() + wait)  # type: ignore[arg-type]
        return Throttled(wait)
