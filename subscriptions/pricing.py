"""Price arithmetic on Stripe price objects (dicts as Stripe and dj-stripe's mirror hold them).

Integers only: amounts are minor units. Stripe's `unit_amount_decimal` (sub-minor-unit prices)
is honoured through Decimal and rounded half-up once per line, as Stripe rounds invoice lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any


class PricingError(ValueError):
    """A price object that cannot be evaluated (unknown scheme, malformed tiers)."""


def _unit_amount(obj: Mapping[str, Any]) -> Decimal:
    if obj.get("unit_amount_decimal") not in (None, ""):
        return Decimal(str(obj["unit_amount_decimal"]))
    return Decimal(int(obj.get("unit_amount") or 0))


def _flat_amount(tier: Mapping[str, Any]) -> Decimal:
    if tier.get("flat_amount_decimal") not in (None, ""):
        return Decimal(str(tier["flat_amount_decimal"]))
    return Decimal(int(tier.get("flat_amount") or 0))


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _tier_sort_key(tier: Mapping[str, Any]) -> tuple[int, int]:
    up_to = tier.get("up_to")
    return (1, 0) if up_to in (None, "inf") else (0, int(up_to))


def tiered_amount(tiers: Sequence[Mapping[str, Any]], mode: str, quantity: int) -> int:
    """Amount in minor units for `quantity` units of a tiered price.

    graduated: each tier prices the units that fall inside it, plus its flat fee when any
    unit falls inside it. volume: every unit is priced at the tier the total falls into,
    plus that tier's flat fee. `up_to=None` (Stripe's "inf") closes the last tier.
    """
    if quantity < 0:
        raise PricingError("quantity must not be negative")
    if not tiers:
        raise PricingError("a tiered price needs tiers")
    ordered = sorted(tiers, key=_tier_sort_key)
    if mode == "volume":
        for tier in ordered:
            up_to = tier.get("up_to")
            if up_to in (None, "inf") or quantity <= int(up_to):
                if quantity == 0:
                    return 0
                return _round(_unit_amount(tier) * quantity + _flat_amount(tier))
        raise PricingError("quantity exceeds the last tier")
    if mode == "graduated":
        total = Decimal(0)
        lower = 0
        for tier in ordered:
            if quantity <= lower:
                break
            up_to = tier.get("up_to")
            upper = quantity if up_to in (None, "inf") else min(quantity, int(up_to))
            units = upper - lower
            if units > 0:
                total += _unit_amount(tier) * units + _flat_amount(tier)
            lower = upper if up_to in (None, "inf") else int(up_to)
        return _round(total)
    raise PricingError(f"unknown tiers_mode {mode!r}")


def price_amount(price: Mapping[str, Any], quantity: int) -> int:
    """Amount in minor units for one billing interval of `quantity` units of `price`."""
    scheme = price.get("billing_scheme") or "per_unit"
    if scheme == "tiered":
        return tiered_amount(price.get("tiers") or [], price.get("tiers_mode") or "", quantity)
    if scheme == "per_unit":
        return _round(_unit_amount(price) * quantity)
    raise PricingError(f"unknown billing_scheme {scheme!r}")
