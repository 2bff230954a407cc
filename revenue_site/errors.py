"""One error shape for the whole API (DESIGN.md §5).

    {"error": {"code": "validation_error", "message": "...", "fields": {"email": ["..."]}}}

`api_exception_handler` is DRF's EXCEPTION_HANDLER; the handler400/403/404/500 views give API
paths the same JSON shape for errors raised outside DRF (unknown URL, CSRF failure) and keep
Django's HTML pages for the admin and the portal.

The database going away mid-request (a dropped or terminated connection, a failover, a
statement cancelled, a deadlock: Django's ``OperationalError`` / ``InterfaceError``) is not a
bug in the request: it answers 503 with ``Retry-After`` (``DATABASE_RETRY_AFTER`` seconds),
``database_unavailable`` in the API error shape on API paths and a short HTML page elsewhere,
and is logged at ERROR with its traceback for the operators. Whatever the request wrote in the
transaction that failed is rolled back by the database; services write in one transaction, so
nothing of it is left. Three places answer it, one per way the error can leave: DRF's handler
(API views), :class:`DatabaseUnavailableMiddleware` (other views: the admin, the portal) and
``server_error`` (errors raised by middleware, e.g. loading the session).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import stripe
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, InterfaceError, OperationalError
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


DATABASE_RETRY_AFTER = 5  # seconds: a failover or a reconnect takes about that long


def is_database_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the database could not serve the request (see the module doc)."""
    return isinstance(exc, OperationalError | InterfaceError)


def _database_unavailable_body() -> dict[str, Any]:
    body = error_body(
        "database_unavailable", "The service is temporarily unavailable; try again shortly."
    )
    body["error"]["retry_after"] = DATABASE_RETRY_AFTER
    return body


def _log_database_unavailable(request: HttpRequest | None, exc: BaseException) -> None:
    path = request.path if request is not None else "?"
    logger.error("database unavailable during %s: %s", path, exc, exc_info=exc)


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: the API error shape on API paths, a short HTML page elsewhere."""
    if _is_api(request):
        response: HttpResponse = JsonResponse(_database_unavailable_body(), status=503)
    else:
        response = HttpResponse(
            "<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1>"
            "<p>The service is temporarily unavailable. Please try again in a few seconds.</p>",
            status=503,
            content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response


class DatabaseUnavailableMiddleware:
    """A view that loses the database answers 503 with Retry-After, not 500 (module doc).

    DRF views answer it in ``api_exception_handler`` before it gets here; this is for the
    others (the admin, the portal, the webhook inbox)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_database_unavailable(exception):
            return None
        _log_database_unavailable(request, exception)
        return database_unavailable_response(request)


def _is_sqlite_id_overflow(exc: Exception) -> bool:
    """SQLite cannot bind an integer past 64 bits (`<int:id>` in a URL takes any digits);
    PostgreSQL just finds no row. Either way the id names nothing: 404, not 500."""
    return isinstance(exc, OverflowError) and "too large to convert to SQLite" in str(exc)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, BillingError | stripe.StripeError):
        return billing_error_response(exc)
    if is_database_unavailable(exc):
        _log_database_unavailable(context.get("request"), exc)
        return Response(
            _database_unavailable_body(),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )
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
    # Django calls handler500 while handling the exception, so it is still the current one.
    if is_database_unavailable(sys.exc_info()[1]):
        return database_unavailable_response(request)
    if _is_api(request):
        return JsonResponse(error_body("server_error", "Internal server error."), status=500)
    return defaults.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("csrf_failed", f"CSRF check failed: {reason}"), status=403)
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason=reason)
