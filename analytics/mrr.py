"""MRR of one Stripe subscription, per DESIGN.md §6. Pure functions over Stripe-shaped dicts.

MRR counts subscriptions whose status is `active` or `past_due`; each licensed recurring item
contributes price x quantity normalised to a month; metered and one-time prices are left out
(usage run-rate is reported separately); forever/repeating discounts are subtracted while they
apply; tax is never included. Arithmetic is exact (Fraction) and rounded half-up once per
subscription, so a customer's MRR is a whole number of minor units.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from fractions import Fraction
from typing import Any

from subscriptions.pricing import price_amount

MRR_STATUSES = frozenset({"active", "past_due"})

# How many of an interval make a month (DESIGN.md §6).
_PER_MONTH = {
    "month": Fraction(1),
    "year": Fraction(1, 12),
    "week": Fraction(52, 12),
    "day": Fraction(365, 12),
}


def _round_half_up(value: Fraction) -> int:
    return int((value * 2 + 1) // 2) if value >= 0 else -int((-value * 2 + 1) // 2)


def monthly_factor(recurring: Mapping[str, Any]) -> Fraction:
    interval = recurring.get("interval")
    if interval not in _PER_MONTH:
        raise ValueError(f"unknown interval {interval!r}")
    return _PER_MONTH[interval] / int(recurring.get("interval_count") or 1)


def _items(subscription: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = subscription.get("items") or {}
    return list(items.get("data") or []) if isinstance(items, Mapping) else []


def _active_coupons(subscription: Mapping[str, Any], at: datetime) -> list[Mapping[str, Any]]:
    """The coupons of the subscription's forever/repeating discounts still running at ``at``.

    A subscription lists its discounts in ``discounts``, each naming its coupon in
    ``source.coupon``; only expanded ones (``expand=["discounts.source.coupon"]``, see
    ``subscriptions.stripe_expand``) say what they take off, so ids are left out.
    """
    coupons = []
    for discount in subscription.get("discounts") or []:
        if not isinstance(discount, Mapping):
            continue
        coupon = (discount.get("source") or {}).get("coupon")
        if not isinstance(coupon, Mapping):
            continue
        if coupon.get("duration") not in ("forever", "repeating"):
            continue
        end = discount.get("end")
        if end is not None and int(end) <= at.timestamp():
            continue
        coupons.append(coupon)
    return coupons


def subscription_mrr(subscription: Mapping[str, Any], *, at: datetime) -> tuple[str, int]:
    """(currency, MRR in minor units) of a Stripe subscription object at time `at`."""
    currency = str(subscription.get("currency") or "").lower()
    if subscription.get("status") not in MRR_STATUSES:
        return currency, 0
    monthly_list = Fraction(0)  # before discounts
    for item in _items(subscription):
        price = item.get("price") or {}
        if not isinstance(price, Mapping):
            continue
        recurring = price.get("recurring") or {}
        if price.get("type") == "one_time" or not recurring:
            continue
        if recurring.get("usage_type") == "metered":
            continue
        currency = currency or str(price.get("currency") or "").lower()
        amount = price_amount(price, int(item.get("quantity") or 0))
        monthly_list += amount * monthly_factor(recurring)
    monthly = monthly_list
    # Stripe applies stacked discounts one after the other, each to what is left.
    for coupon in _active_coupons(subscription, at) if monthly_list > 0 else []:
        if coupon.get("percent_off") is not None:
            monthly -= monthly * Fraction(str(coupon["percent_off"])) / 100
        elif coupon.get("amount_off") is not None:
            first_recurring = next(
                (
                    (i.get("price") or {}).get("recurring")
                    for i in _items(subscription)
                    if (i.get("price") or {}).get("recurring")
                ),
                None,
            )
            factor = monthly_factor(first_recurring) if first_recurring else Fraction(1)
            monthly -= int(coupon["amount_off"]) * factor
        monthly = max(monthly, Fraction(0))
    return currency, _round_half_up(monthly)
