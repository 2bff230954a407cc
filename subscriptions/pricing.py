"""Price arithmetic on Stripe price objects (dicts as Stripe and dj-stripe's mirror hold them),
and the one definition of a valid list of tiers.

Integers only: amounts are minor units. Stripe's `unit_amount_decimal` (sub-minor-unit prices)
is honoured through Decimal and rounded half-up once per line, as Stripe rounds invoice lines.

Tiers are held as Stripe returns them: `up_to` an integer, or null for the open-ended last
tier. Stripe takes `"inf"` for that tier when a price is created, so `"inf"` is read as null
wherever tiers come in (`tier_up_to`), and written back only in a create call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypedDict


class PricingError(ValueError):
    """A price object that cannot be evaluated (unknown scheme, malformed tiers)."""


class TiersError(PricingError):
    """A list of tiers that is not a valid price (the message says why, for staff)."""


class Tier(TypedDict):
    """One tier as we store it: `up_to` None for the open-ended last tier, amounts in minor
    units (0 when Stripe's tier leaves one out)."""

    up_to: int | None
    unit_amount: int
    flat_amount: int


TIER_KEYS = frozenset({"up_to", "unit_amount", "flat_amount"})
OPEN_ENDED = (None, "inf")  # how the last tier's up_to may come in


def tier_up_to(value: Any) -> int | None:
    """A tier's upper bound: None for the open-ended tier (null, or Stripe's `"inf"`)."""
    return None if value in OPEN_ENDED else int(value)


def tiers_normalised(tiers: Sequence[Mapping[str, Any]] | None) -> list[Tier]:
    """Tiers already known to be valid (our stored rows, a Stripe price) in our stored shape:
    `"inf"` read as None, missing amounts as 0. Checks nothing: `tiers_parse` does."""
    return [
        {
            "up_to": tier_up_to(tier.get("up_to")),
            "unit_amount": int(tier.get("unit_amount") or 0),
            "flat_amount": int(tier.get("flat_amount") or 0),
        }
        for tier in tiers or []
    ]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def tiers_parse(tiers: Any) -> list[Tier]:
    """Check tiers from outside (the staff form, a model row, a Stripe price) and return them
    in our stored shape. Raises TiersError, whose message names the first fault.

    Valid tiers, as Stripe takes them: a non-empty list of {up_to, unit_amount, flat_amount};
    `up_to` strictly ascending positive integers, and null (or `"inf"`) for the last tier
    only; amounts non-negative integers (minor units), at least one of them per tier.
    """
    if not isinstance(tiers, list) or not tiers:
        raise TiersError("Tiers must be a non-empty JSON list (a tiered price needs tiers).")
    parsed: list[Tier] = []
    previous = 0
    for number, tier in enumerate(tiers, start=1):
        if not isinstance(tier, dict):
            raise TiersError(f"Tier {number} must be an object.")
        unknown = set(tier) - TIER_KEYS
        if unknown:
            raise TiersError(f"Tier {number}: unknown keys {sorted(unknown)}.")
        last = number == len(tiers)
        up_to = tier.get("up_to")
        if up_to in OPEN_ENDED:
            if not last:
                raise TiersError(f"Only the last tier may be open-ended (tier {number}).")
            up_to = None
        else:
            if not _is_int(up_to) or up_to <= previous:
                raise TiersError(
                    f"Tier {number}: up_to must be an integer above {previous} (ascending)."
                )
            if last:
                raise TiersError("The last tier must be open-ended (up_to: null).")
            previous = up_to
        unit_amount, flat_amount = tier.get("unit_amount"), tier.get("flat_amount")
        for key, value in (("unit_amount", unit_amount), ("flat_amount", flat_amount)):
            if value is not None and (not _is_int(value) or value < 0):
                raise TiersError(
                    f"Tier {number}: {key} must be a non-negative integer (minor units)."
                )
        if unit_amount is None and flat_amount is None:
            raise TiersError(f"Tier {number} needs a unit_amount or a flat_amount.")
        parsed.append(
            {"up_to": up_to, "unit_amount": unit_amount or 0, "flat_amount": flat_amount or 0}
        )
    return parsed


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
    up_to = tier_up_to(tier.get("up_to"))
    return (1, 0) if up_to is None else (0, up_to)


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
            up_to = tier_up_to(tier.get("up_to"))
            if up_to is None or quantity <= up_to:
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
            up_to = tier_up_to(tier.get("up_to"))
            upper = quantity if up_to is None else min(quantity, up_to)
            units = upper - lower
            if units > 0:
                total += _unit_amount(tier) * units + _flat_amount(tier)
            lower = upper if up_to is None else up_to
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
