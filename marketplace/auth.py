"""API key authentication, scopes and the per-key rate limit for the usage endpoints.

`Authorization: Bearer <api key>`: the key's keyed hash is looked up in the database on every
request (no per-process cache), so revoking a key stops it on every process at once. An
unknown, revoked or expired key, or one whose user is inactive, is a 401.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.models import User
from marketplace import selectors, services
from marketplace.models import ApiKey
from revenue_site.throttling import SlidingWindowRateThrottle


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send `Authorization: Bearer <api key>`.")
        try:
            key = parts[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid API key.") from exc
        api_key = selectors.api_key_for_hash(secret_hash=services.api_key_hash(key))
        now = timezone.now()
        if api_key is None or not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key was revoked.")
        if api_key.expires_at is not None and api_key.expires_at <= now:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        services.api_key_touch(api_key=api_key, at=now)
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class HasApiKeyScope(BasePermission):
    """The view's `required_scopes`: the key must hold at least one of them."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request: Request, view: APIView) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False
        required: tuple[str, ...] = getattr(view, "required_scopes", ())
        return any(scope in api_key.scopes for scope in required)


class ApiKeyRateThrottle(SlidingWindowRateThrottle):
    """Requests per API key (rate `usage`, from API_THROTTLE_USAGE), counted in the shared
    cache (Redis in production) so the limit holds across processes."""

    scope = "usage"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.pk}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """The API key in the OpenAPI schema (an HTTP bearer scheme)."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from POST /api/v1/api-keys/: `Bearer rk_live_…`.",
        }
