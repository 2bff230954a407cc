"""What a Stripe error means to us: one error type per kind, decided in one place.

Every service that calls Stripe runs the call inside :func:`stripe_errors` (a context manager
and a decorator), which turns ``stripe.StripeError`` into one of:

- :class:`PaymentDeclined` (HTTP 402): a ``CardError``; carries Stripe's ``decline_code``;
- :class:`BillingInputError` (HTTP 400): an ``InvalidRequestError`` (unknown id, bad or
  missing parameter); ``field`` is our input's name for Stripe's ``param`` where the caller
  maps one (``param_fields``), else ``non_field_errors``; ``param`` keeps Stripe's;
- :class:`StripeUnavailable` (HTTP 503 with ``Retry-After``): Stripe could not answer, so the
  same request may succeed later: connection errors, Stripe's 5xx (``APIError``), rate limits
  (429), a conflicting in-flight idempotent request, and authentication / permission errors.
  The last two are our configuration, not the caller's input: the client cannot fix them and
  a 500 would say "bug"; they are logged at ERROR for the operators and answered as
  "temporarily unavailable" like an outage, which is what they are to the caller.

The API's exception handler (``revenue_site.errors``) answers each kind with its
``http_status`` in the API error shape; admin actions show ``message`` as an error message.
Lives in ``revenue_site`` (shared helpers) because the ledger's payouts need it as much as
subscriptions, and the ledger does not import the apps built on it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import stripe

logger = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 30  # seconds; Stripe sends no Retry-After of its own


class BillingError(Exception):
    """A billing request Stripe or our catalog refused; `field` names the input at fault."""

    code = "billing_error"
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class BillingInputError(BillingError):
    """Bad input (unknown or inactive price, unknown payment method, bad quantity...);
    `param` is Stripe's name for it when Stripe refused it."""

    code = "validation_error"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ):
        super().__init__(message, field=field, code=code)
        self.param = param


class PaymentDeclined(BillingError):
    """The card was declined; `decline_code` is Stripe's (falls back to the error code)."""

    code = "card_declined"
    http_status = 402

    def __init__(self, message: str, *, code: str | None, decline_code: str | None):
        super().__init__(message, field=None, code=code or "card_declined")
        self.decline_code = decline_code or code or "card_declined"


class StripeUnavailable(BillingError):
    """Stripe could not answer; retry after `retry_after` seconds (the request is idempotent)."""

    code = "stripe_unavailable"
    http_status = 503

    def __init__(self, message: str, *, retry_after: int = DEFAULT_RETRY_AFTER):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(exc: stripe.StripeError) -> int:
    value = (exc.headers or {}).get("Retry-After") if exc.headers else None
    try:
        return max(1, int(value)) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER


def stripe_failure(
    exc: stripe.StripeError, *, param_fields: Mapping[str, str] | None = None
) -> BillingError:
    """Our error kind for a Stripe error (see the module docstring)."""
    fields = dict(param_fields or {})
    if isinstance(exc, stripe.CardError):
        error = exc.error
        return PaymentDeclined(
            exc.user_message or "Your card was declined.",
            code=exc.code,
            decline_code=getattr(error, "decline_code", None) if error else None,
        )
    if isinstance(exc, stripe.InvalidRequestError):
        param = exc.param or None
        field = fields.get((param or "").split("[")[0])
        if field is None and exc.http_status == 404:
            # "No such price / payment_method": Stripe names the object in the message.
            message = (exc.user_message or "").lower()
            field = next((f for key, f in fields.items() if key in message), None)
        if field is None and len(set(fields.values())) == 1:
            field = next(iter(fields.values()))  # only one input could be at fault
        return BillingInputError(
            exc.user_message or "Stripe rejected the request.",
            field=field or "non_field_errors",
            param=param,
        )
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        logger.error("Stripe refused our API key: %s", exc.user_message or exc)
        return StripeUnavailable("The payment provider is not available right now.")
    if isinstance(exc, stripe.IdempotencyError) and exc.http_status != 409:
        logger.error("idempotency key reused with other parameters: %s", exc.user_message)
        return BillingInputError(
            exc.user_message or "Stripe rejected the request.", field="non_field_errors"
        )
    if not isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        logger.warning("Stripe failed (%s): %s", exc.http_status, exc.user_message or exc)
    return StripeUnavailable(
        "The payment provider is not available right now; try again shortly.",
        retry_after=_retry_after(exc),
    )


@contextmanager
def stripe_errors(param_fields: Mapping[str, str] | None = None) -> Iterator[None]:
    """Run Stripe calls; a ``stripe.StripeError`` leaves as our error kind (:func:`stripe_failure`).

    ``param_fields`` maps Stripe parameter names to our input field names. Usable as a
    decorator (``@stripe_errors()``).
    """
    try:
        yield
    except stripe.StripeError as exc:
        raise stripe_failure(exc, param_fields=param_fields) from exc
