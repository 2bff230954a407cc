from datetime import UTC, datetime
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.mrr import monthly_factor, subscription_mrr

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _price(unit_amount, interval="month", count=1, usage_type="licensed", currency="usd"):
    return {
        "currency": currency,
        "type": "recurring",
        "billing_scheme": "per_unit",
        "unit_amount": unit_amount,
        "recurring": {"interval": interval, "interval_count": count, "usage_type": usage_type},
    }


def _sub(*items, status="active", discount=None, currency="usd"):
    """A subscription; ``discount`` ({coupon, end}) becomes an expanded entry of ``discounts``."""
    discounts = []
    if discount is not None:
        discounts.append(
            {
                "id": "di_test",
                "object": "discount",
                "source": {"type": "coupon", "coupon": discount["coupon"]},
                "end": discount["end"],
            }
        )
    return {
        "status": status,
        "currency": currency,
        "discounts": discounts,
        "items": {"data": [{"price": p, "quantity": q} for p, q in items]},
    }


@pytest.mark.parametrize(
    ("interval", "count", "expected"),
    [("month", 1, 12_000), ("month", 3, 4_000), ("year", 1, 1_000), ("week", 1, 52_000)],
)
def test_intervals_normalise_to_a_month(interval, count, expected):
    assert subscription_mrr(_sub((_price(12_000, interval, count), 1)), at=NOW) == ("usd", expected)


def test_daily_price_uses_365_days_a_year():
    # 100 a day -> 100 * 365 / 12 = 3041.67 -> 3042
    assert subscription_mrr(_sub((_price(100, "day"), 1)), at=NOW)[1] == 3042


@pytest.mark.parametrize("status", ["trialing", "incomplete", "canceled", "unpaid"])
def test_only_active_and_past_due_count(status):
    assert subscription_mrr(_sub((_price(5_000), 2), status=status), at=NOW)[1] == 0
    assert subscription_mrr(_sub((_price(5_000), 2), status="past_due"), at=NOW)[1] == 10_000


def test_metered_items_are_excluded_and_quantity_multiplies():
    sub = _sub((_price(2_000), 3), (_price(7, usage_type="metered"), 1))
    assert subscription_mrr(sub, at=NOW)[1] == 6_000


def test_tiered_price_is_evaluated_at_the_quantity():
    price = _price(None)
    price.update(
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=[{"up_to": 5, "unit_amount": 1000}, {"up_to": None, "unit_amount": 500}],
    )
    assert subscription_mrr(_sub((price, 7)), at=NOW)[1] == 6_000


def test_forever_and_running_repeating_discounts_apply_once_and_expired_do_not():
    forever = {"coupon": {"duration": "forever", "percent_off": 25}, "end": None}
    assert subscription_mrr(_sub((_price(10_000), 1), discount=forever), at=NOW)[1] == 7_500
    running = {
        "coupon": {"duration": "repeating", "amount_off": 1_200},
        "end": int(NOW.timestamp()) + 86_400,
    }
    assert (
        subscription_mrr(_sub((_price(120_000, "year"), 1), discount=running), at=NOW)[1] == 9_900
    )
    expired = {**running, "end": int(NOW.timestamp()) - 1}
    assert subscription_mrr(_sub((_price(10_000), 1), discount=expired), at=NOW)[1] == 10_000
    once = {"coupon": {"duration": "once", "percent_off": 50}, "end": None}
    assert subscription_mrr(_sub((_price(10_000), 1), discount=once), at=NOW)[1] == 10_000


def test_a_discount_listed_by_id_only_cannot_be_valued():
    sub = {**_sub((_price(10_000), 1)), "discounts": ["di_unexpanded"]}
    assert subscription_mrr(sub, at=NOW)[1] == 10_000


def test_discount_never_makes_mrr_negative():
    big = {"coupon": {"duration": "forever", "amount_off": 99_999}, "end": None}
    assert subscription_mrr(_sub((_price(1_000), 1), discount=big), at=NOW)[1] == 0


@given(
    unit=st.integers(min_value=0, max_value=10**9),
    quantity=st.integers(min_value=0, max_value=1_000),
    interval=st.sampled_from(["day", "week", "month", "year"]),
    count=st.integers(min_value=1, max_value=12),
)
def test_mrr_is_the_exact_monthly_amount_rounded_half_up(unit, quantity, interval, count):
    _, mrr = subscription_mrr(_sub((_price(unit, interval, count), quantity)), at=NOW)
    exact = Fraction(unit * quantity) * monthly_factor(
        {"interval": interval, "interval_count": count}
    )
    assert abs(Fraction(mrr) - exact) <= Fraction(1, 2)
    assert isinstance(mrr, int)
