"""Tiered price arithmetic, in integer minor units (as Stripe computes it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _as_int(value: Any) -> int:
    return 0 if value in (None, "") else int(value)


def _up_to(value: Any) -> int | None:
    """A tier's upper bound; ``None`` (Stripe's output) and ``"inf"`` (its input) mean unbounded."""
    return None if value in (None, "inf") else int(value)


def tiered_amount(tiers: Iterable[Mapping[str, Any]], tiers_mode: str, quantity: int) -> int:
    """Amount for ``quantity`` units of a tiered price.

    graduated: each tier prices the units that fall inside it, plus its flat amount once as
    soon as any unit falls inside it. volume: the whole quantity is priced at the tier it
    falls into (unit amount * quantity + that tier's flat amount).
    """
    tiers = list(tiers)
    if quantity < 0:
        raise ValueError("quantity must be >= 0")
    if tiers_mode == "volume":
        for tier in tiers:
            bound = _up_to(tier.get("up_to"))
            if bound is None or quantity <= bound:
                return _as_int(tier.get("unit_amount")) * quantity + _as_int(
                    tier.get("flat_amount")
                )
        raise ValueError("the last tier must be unbounded")
    if tiers_mode == "graduated":
        total = 0
        lower = 0
        for tier in tiers:
            if quantity <= lower:
                break
            bound = _up_to(tier.get("up_to"))
            upper = quantity if bound is None else min(bound, quantity)
            total += _as_int(tier.get("unit_amount")) * (upper - lower)
            total += _as_int(tier.get("flat_amount"))
            if bound is None:
                break
            lower = bound
        return total
    raise ValueError(f"unknown tiers_mode {tiers_mode!r}")


def prorated(amount: int, remaining: int, period: int) -> int:
    """``amount * remaining / period`` in whole minor units, halves rounded away from zero.

    Stripe prorates to the second: ``remaining`` and ``period`` are seconds (what is left of
    the period after the change, the whole period).
    """
    if period <= 0 or not 0 <= remaining <= period:
        raise ValueError("remaining must be within the period")
    magnitude = (2 * abs(amount) * remaining + period) // (2 * period)
    return magnitude if amount >= 0 else -magnitude
