"""Serializer fields shared by the API's apps, whose OpenAPI schema says what they accept."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

CURRENCY_PATTERN = r"^[A-Za-z]{3}$"


class CurrencyField(serializers.RegexField):
    """An ISO 4217 code: three ASCII letters in either case, returned lower-case.

    The schema carries the pattern, so a client (and schemathesis) knows before sending that
    "US$" or " usd" is refused. Surrounding whitespace is refused rather than trimmed, as the
    pattern says; max_length stops Python's `$` from accepting a trailing newline.
    """

    default_error_messages = {"invalid": "A three-letter ISO 4217 code, e.g. usd."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", "ISO 4217, e.g. usd.")
        super().__init__(
            CURRENCY_PATTERN, min_length=3, max_length=3, trim_whitespace=False, **kwargs
        )

    def to_internal_value(self, data: Any) -> str:
        return str(super().to_internal_value(data)).lower()


class PaymentStepSerializer(serializers.Serializer[Any]):
    """A payment the customer still has to complete in their browser (3-D Secure), as the
    purchase and subscribe answers hand it over: Stripe.js confirms it with the secret."""

    payment_intent = serializers.CharField(read_only=True, help_text="The Stripe PaymentIntent.")
    status = serializers.CharField(
        read_only=True,
        help_text="Its Stripe status: `requires_action`, or `requires_confirmation` / "
        "`requires_payment_method` (a subscription's first invoice, not attempted yet).",
    )
    client_secret = serializers.CharField(
        read_only=True,
        help_text="For Stripe.js in the customer's browser: "
        "`stripe.confirmCardPayment(client_secret, {payment_method})` runs 3-D Secure.",
    )
