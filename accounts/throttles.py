"""Cache-backed throttles for the unauthenticated account endpoints.

DRF's SimpleRateThrottle keeps a request history per key in the default cache (Redis in
production, so limits hold across workers). Rates come from REST_FRAMEWORK's
DEFAULT_THROTTLE_RATES, read on each request rather than at import so `override_settings`
and environment changes take effect.
"""

from __future__ import annotations

import hashlib

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView


class _ScopedRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return None if rate is None else str(rate)


class _PerIpThrottle(_ScopedRateThrottle):
    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class SignupThrottle(_PerIpThrottle):
    scope = "signup"


class AuthIpThrottle(_PerIpThrottle):
    scope = "auth_ip"


class AuthEmailThrottle(_ScopedRateThrottle):
    """Limits guesses against one account, whichever addresses they come from."""

    scope = "auth_email"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        email = request.data.get("email") if hasattr(request.data, "get") else None
        if not isinstance(email, str) or not email.strip():
            return None  # nothing to key on; the IP throttle still applies
        # Hash so arbitrary input never reaches a cache key verbatim.
        ident = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}
