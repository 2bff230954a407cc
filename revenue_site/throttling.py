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
from typing import TYPE_CHECKING, Any

from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

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


class LocalWindowCounter:
    """``window_hits`` kept in this process's memory: no round trip, so no shared limit (each
    gunicorn worker counts on its own). For limits that guard capacity rather than secrets.

    Bounded: past ``max_keys`` keys, the ones not hit in this window or the one before are
    dropped, and if that frees nothing the table starts afresh (a flood of new addresses
    resets the counts; it does not grow the worker's memory)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._counts: dict[str, tuple[int, int, int]] = {}  # key -> (window, count, before)
        self._lock = threading.Lock()

    def hit(self, key: str, window: int) -> tuple[int, int]:
        with self._lock:
            found = self._counts.get(key)
            if found is None:
                if len(self._counts) >= self.max_keys:
                    self._prune(window)
                count, before = 1, 0
            elif found[0] == window:
                count, before = found[1] + 1, found[2]
            else:
                count, before = 1, found[1] if found[0] == window - 1 else 0
            self._counts[key] = (window, count, before)
            return count, before

    def _prune(self, window: int) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[0] >= window - 1}
        if len(self._counts) >= self.max_keys:
            self._counts = {}

    def clear(self) -> None:
        with self._lock:
            self._counts = {}


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
