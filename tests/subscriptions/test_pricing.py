import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscriptions.pricing import PricingError, price_amount, tiered_amount

TIERS = [
    {"up_to": 10, "unit_amount": 1000, "flat_amount": None},
    {"up_to": 50, "unit_amount": 800, "flat_amount": 500},
    {"up_to": None, "unit_amount": 500, "flat_amount": None},
]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (0, 0),
        (1, 1000),
        (10, 10_000),
        (11, 10_000 + 800 + 500),
        (60, 10_000 + 32_000 + 500 + 5_000),
    ],
)
def test_graduated_prices_each_tier_separately(quantity, expected):
    assert tiered_amount(TIERS, "graduated", quantity) == expected


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(0, 0), (10, 10_000), (11, 11 * 800 + 500), (60, 60 * 500)],
)
def test_volume_prices_every_unit_at_the_reached_tier(quantity, expected):
    assert tiered_amount(TIERS, "volume", quantity) == expected


def test_tiers_given_out_of_order_are_sorted():
    assert tiered_amount(list(reversed(TIERS)), "graduated", 11) == 11_300


def test_unknown_mode_and_scheme_are_refused():
    with pytest.raises(PricingError):
        tiered_amount(TIERS, "stairstep", 3)
    with pytest.raises(PricingError):
        price_amount({"billing_scheme": "mystery"}, 1)


def test_sub_minor_unit_prices_round_half_up_per_line():
    price = {"billing_scheme": "per_unit", "unit_amount_decimal": "0.5"}
    assert price_amount(price, 1) == 1
    assert price_amount(price, 3) == 2  # 1.5 rounds half up


@given(st.integers(min_value=0, max_value=10_000))
def test_graduated_never_exceeds_first_tier_rate_and_is_monotonic(quantity):
    amount = tiered_amount(TIERS, "graduated", quantity)
    assert amount <= quantity * 1000 + 500
    assert tiered_amount(TIERS, "graduated", quantity + 1) >= amount
