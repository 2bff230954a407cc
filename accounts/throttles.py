"""Cache-backed throttles for the unauthenticated account endpoints.

Sliding-window counters in the default cache (Redis in production, so limits hold across
workers): revenue_site.throttling.
"""

from __future__ import annotations

import hashlib

from rest_framework.request import Request
from rest_framework.views import APIView

from revenue_site.throttling import PerIpRateThrottle, SlidingWindowRateThrottle


class SignupThrottle(PerIpRateThrottle):
    scope = "signup"


class AuthIpThrottle(PerIpRateThrottle):
    scope = "auth_ip"


class AuthEmailThrottle(SlidingWindowRateThrottle):
    """Limits guesses against one account, whichever addresses they come from."""

    scope = "auth_email"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        email = request.data.get("email") if hasattr(request.data, "get") else None
        if not isinstance(email, str) or not email.strip():
            return None  # nothing to key on; the IP throttle still applies
        # Hash so arbitrary input never reaches a cache key verbatim.
        ident = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}
