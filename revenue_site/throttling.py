"""Rate limits for the API: fixed-window counters in the shared cache (Redis in production).

DRF's ``SimpleRateThrottle`` keeps a list of request times per key and reads, trims, pickles
and writes the whole list back on every request: two cache round trips and a list as long as
the rate (6,000 entries for the usage API's default). A counter per key and window answers the
same question with one round trip (``INCR`` + ``EXPIRE … NX`` pipelined) whatever the rate
(bench/license_verify.py measures the verify endpoint with it). The price is the fixed window's
edge: a client may spend one window's allowance at its end and the next one's at the start of
the next, so a short burst can reach twice the rate; ``Retry-After`` names the window's end.

Rates come from ``REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']`` on each request, so settings
overrides and environment changes apply. When the cache cannot be reached the request is let
through and the failure logged: a rate limiter must not take the API down with it.
"""

from __future__ import annotations

import logging
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


def window_hit(key: str, seconds: int) -> int:
    """Count one request against ``key`` in its current window; return the window's count.

    On Redis one round trip (the counter expires with its window); on other caches
    ``add`` then ``incr`` (the local-memory cache of development and tests)."""
    if _uses_redis():
        from django_redis import get_redis_connection

        full_key = cache.make_key(key)
        pipe = get_redis_connection("default").pipeline(transaction=False)
        pipe.incr(full_key)
        pipe.expire(full_key, seconds + 1, nx=True)
        count, _ = pipe.execute()
        return int(count)
    cache.add(key, 0, seconds + 1)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, seconds + 1)
        return 1


class FixedWindowRateThrottle(SimpleRateThrottle):
    """A scoped rate (``scope`` names the entry in DEFAULT_THROTTLE_RATES) counted per
    window. Subclasses say whose requests are counted with ``get_cache_key``."""

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
        window = int(self.now // self.duration)
        self.window_end = (window + 1) * self.duration
        try:
            count = window_hit(f"{self.key}:{window}", int(self.duration))
        except Exception:  # the cache is down: let the request through, say so
            logger.warning(
                "rate limit %s not counted: cache unavailable", self.scope, exc_info=True
            )
            return True
        return count <= self.num_requests

    def wait(self) -> float:
        return max(0.0, self.window_end - self.now)


class PerIpRateThrottle(FixedWindowRateThrottle):
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


class UserRateThrottle(FixedWindowRateThrottle):
    """DRF's ``user`` rate, per signed-in user (per address for anonymous requests)."""

    scope = "user"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            ident = str(request.user.pk)
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
