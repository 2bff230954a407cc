"""One error shape for the whole API (DESIGN.md §5).

    {"error": {"code": "validation_error", "message": "...", "fields": {"email": ["..."]}}}

`api_exception_handler` is DRF's EXCEPTION_HANDLER; the handler400/403/404/500 views give API
paths the same JSON shape for errors raised outside DRF (unknown URL, CSRF failure) and keep
Django's HTML pages for the admin and the portal.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from revenue_site.stripe_errors import (
    BillingError,
    BillingInputError,
    PaymentDeclined,
    StripeUnavailable,
    stripe_failure,
)

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class Unprocessable(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request is well-formed but cannot be processed."
    default_code = "unprocessable"


ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorBody",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(
                    child=serializers.JSONField(),
                    help_text="Each refused field's messages (a list), or for a nested object or "
                    "a list's items an object of the same shape keyed by field or index.",
                ),
                "param": serializers.CharField(
                    required=False, help_text="Stripe's name of the parameter it refused."
                ),
                "decline_code": serializers.CharField(
                    required=False, help_text="402: why the card was declined (Stripe's code)."
                ),
                "retry_after": serializers.IntegerField(
                    required=False, help_text="429/503: seconds to wait before retrying."
                ),
            },
        )
    },
)
"""The API error shape, for the OpenAPI schema."""


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail: Any) -> Any:
    """Turn DRF's ErrorDetail trees into plain lists/dicts of strings."""
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _first_message(fields: dict[str, Any]) -> str:
    for name, messages in fields.items():
        first = messages[0] if isinstance(messages, list) and messages else messages
        if isinstance(first, dict):
            return _first_message(first)
        label = "" if name == "non_field_errors" else f"{name}: "
        return f"{label}{first}"
    return "Invalid input."


def billing_error_response(exc: BillingError | stripe.StripeError) -> Response:
    """The API answer for a billing error (a raw Stripe error is mapped first): 400 naming the
    field (and Stripe's `param`), 402 with the decline code, 409, 503 with Retry-After."""
    if isinstance(exc, stripe.StripeError):
        exc = stripe_failure(exc)
    fields: dict[str, Any] = {}
    if exc.http_status == status.HTTP_400_BAD_REQUEST:
        fields = {exc.field or "non_field_errors": [exc.message]}
    body = error_body(exc.code, exc.message, fields)
    headers: dict[str, str] = {}
    if isinstance(exc, BillingInputError) and exc.param:
        body["error"]["param"] = exc.param
    elif isinstance(exc, PaymentDeclined):
        body["error"]["decline_code"] = exc.decline_code
    elif isinstance(exc, StripeUnavailable):
        body["error"]["retry_after"] = exc.retry_after
        headers["Retry-After"] = str(exc.retry_after)
    return Response(body, status=exc.http_status, headers=headers)


def _is_sqlite_id_overflow(exc: Exception) -> bool:
    """SQLite cannot bind an integer past 64 bits (`<int:id>` in a URL takes any digits);
    PostgreSQL just finds no row. Either way the id names nothing: 404, not 500."""
    return isinstance(exc, OverflowError) and "too large to convert to SQLite" in str(exc)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, BillingError | stripe.StripeError):
        return billing_error_response(exc)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, IntegrityError):
        logger.warning("integrity error turned into 409: %s", exc)
        exc = Conflict()
    elif isinstance(exc, Http404) or _is_sqlite_id_overflow(exc):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500

    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail
        fields = _flatten(errors if isinstance(errors, dict) else {"non_field_errors": errors})
        response.data = error_body("validation_error", _first_message(fields), fields)
        return response

    detail = getattr(exc, "detail", None)
    codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
    code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
    if isinstance(detail, dict):
        fields = _flatten(detail)
        message = _first_message(fields) if fields else "Error."
    elif isinstance(detail, list):
        fields = {}
        message = "; ".join(str(item) for item in _flatten(detail)) or "Error."
    else:
        fields, message = {}, str(detail) if detail is not None else "Error."
    response.data = error_body(str(code), message, fields)
    wait = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
    if wait is not None:
        response.data["error"]["retry_after"] = int(wait)
    return response


def error_response(exc: exceptions.APIException) -> HttpResponse:
    """An API error answered by a plain Django view (a hot path served outside DRF's request
    cycle): the status, body and headers (``Retry-After``) that api_exception_handler gives a
    DRF view, rendered by the same JSON renderer."""
    response = api_exception_handler(exc, {})
    if response is None:  # every APIException has an answer
        raise exc
    out = HttpResponse(
        JSONRenderer().render(response.data),
        status=response.status_code,
        content_type="application/json",
    )
    for name, value in response.items():
        if name.lower() != "content-type":  # the unrendered Response's default, not JSON's
            out[name] = value
    return out


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "Bad request."), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("server_error", "Internal server error."), status=500)
    return defaults.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("csrf_failed", f"CSRF check failed: {reason}"), status=403)
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason=reason)
