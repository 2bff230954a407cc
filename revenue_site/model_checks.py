"""Field validators and check-constraint conditions that several apps' models share: money's
currency code (lowercase ISO 4217, as Stripe writes it) and percentages (commission, fee)."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Length, Lower
from django.db.models.lookups import Exact

from revenue_site.money import MoneyError, normalize_currency

PERCENT_VALIDATORS = [MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))]


def percent_between_0_and_100(field: str) -> models.Q:
    return models.Q(**{f"{field}__gte": 0, f"{field}__lte": 100})


def currency_is_lowercase_iso() -> models.Q:
    return models.Q(Exact(Length("currency"), 3)) & models.Q(currency=Lower("currency"))


def validate_currency(value: str) -> None:
    try:
        code = normalize_currency(value)
    except MoneyError as exc:
        raise ValidationError(str(exc)) from exc
    if code != value:
        raise ValidationError("Use the lowercase ISO 4217 code, e.g. usd.")
