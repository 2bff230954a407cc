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


def _coupons_running(discounts: Any, at: datetime) -> list[Mapping[str, Any]]:
    """The coupons of the forever/repeating discounts in ``discounts`` still running at ``at``.

    Stripe lists discounts (a subscription's ``discounts``, an item's ``discounts``), each
    naming its coupon in ``source.coupon``; only expanded ones
    (``expand=["discounts.source.coupon"]``, see ``subscriptions.stripe_expand``) say what they
    take off, so ids are left out. A repeating discount stops at its ``end``.
    """
    coupons = []
    for discount in discounts or []:
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


def _discounted(amount: Fraction, coupons: list[Mapping[str, Any]], factor: Fraction) -> Fraction:
    """``amount`` (monthly) less ``coupons`` one after the other, each on what is left (as Stripe
    stacks them); an ``amount_off`` is per invoice, so it is normalised with ``factor``."""
    for coupon in coupons if amount > 0 else []:
        if coupon.get("percent_off") is not None:
            amount -= amount * Fraction(str(coupon["percent_off"])) / 100
        elif coupon.get("amount_off") is not None:
            amount -= int(coupon["amount_off"]) * factor
        amount = max(amount, Fraction(0))
    return amount


def _tax_exclusive(amount: Fraction, tax_rates: Any) -> Fraction:
    """``amount`` without the tax that inclusive tax rates put inside it. Exclusive rates are
    added on top of the price by Stripe, so the price already excludes them."""
    for tax_rate in tax_rates or []:
        if isinstance(tax_rate, Mapping) and tax_rate.get("inclusive"):
            amount /= 1 + Fraction(str(tax_rate.get("percentage") or 0)) / 100
    return amount


def subscription_mrr(subscription: Mapping[str, Any], *, at: datetime) -> tuple[str, int]:
    """(currency, MRR in minor units) of a Stripe subscription object at time `at`.

    Per licensed recurring item: price x quantity (``price_amount``: per unit or tiered) for one
    interval, normalised to a month, without the tax of inclusive tax rates (the item's
    ``tax_rates``, else the subscription's ``default_tax_rates``), less the item's running
    discounts; then less the subscription's running discounts.
    """
    currency = str(subscription.get("currency") or "").lower()
    if subscription.get("status") not in MRR_STATUSES:
        return currency, 0
    monthly = Fraction(0)
    factor = Fraction(1)  # a subscription's items share one interval (Stripe's rule)
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
        factor = monthly_factor(recurring)
        amount = price_amount(price, int(item.get("quantity") or 0)) * factor
        amount = _tax_exclusive(
            amount, item.get("tax_rates") or subscription.get("default_tax_rates")
        )
        monthly += _discounted(amount, _coupons_running(item.get("discounts"), at), factor)
    monthly = _discounted(monthly, _coupons_running(subscription.get("discounts"), at), factor)
    return currency, _round_half_up(monthly)
