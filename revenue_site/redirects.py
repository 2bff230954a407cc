"""Redirect targets that callers choose: only back to this site or an allowed origin.

Stripe sends the customer's browser to the URLs we hand it (Checkout's `success_url` /
`cancel_url`, the billing portal's `return_url`, Connect onboarding's `return_url` /
`refresh_url`), so a URL taken from a request unchecked would make Stripe's trusted pages an
open redirect to a phishing site. Every such field is a `RedirectURLField`: an absolute http(s)
URL (https outside DEBUG) whose host is the request's own or one of `CORS_ALLOWED_ORIGINS`
(the front ends allowed to call the API), as Django's `url_has_allowed_host_and_scheme`
decides (it refuses `//host`, `/\\host`, `https:host`, control characters and the like).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme
from rest_framework import serializers


def redirect_hosts(request: HttpRequest) -> set[str]:
    """Same origin plus the origins allowed to call the API cross-origin (CORS)."""
    hosts = {request.get_host()}
    for origin in getattr(settings, "CORS_ALLOWED_ORIGINS", []) or []:
        netloc = urlsplit(origin).netloc
        if netloc:
            hosts.add(netloc)
    return hosts


def redirect_allowed(url: str, *, request: HttpRequest) -> bool:
    return url_has_allowed_host_and_scheme(
        url, allowed_hosts=redirect_hosts(request), require_https=not settings.DEBUG
    )


class RedirectURLField(serializers.URLField):
    """An absolute URL back to us or an allowed origin (no open redirect through Stripe)."""

    def to_internal_value(self, data: Any) -> str:
        url = str(super().to_internal_value(data))
        if not redirect_allowed(url, request=self.context["request"]):
            raise serializers.ValidationError("Redirects only to this site or an allowed origin.")
        return url
