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


def _unit_by_unit(tiers, mode, quantity):
    """An independent reference: walk the units one at a time (slow, obviously right)."""
    bounds = [(t["up_to"] if t["up_to"] is not None else float("inf"), t) for t in tiers]
    if mode == "volume":
        if quantity == 0:
            return 0
        tier = next(t for up_to, t in bounds if quantity <= up_to)
        return quantity * tier["unit_amount"] + (tier["flat_amount"] or 0)
    total, entered = 0, set()
    for unit in range(1, quantity + 1):
        index, tier = next((i, t) for i, (up_to, t) in enumerate(bounds) if unit <= up_to)
        if index not in entered:
            entered.add(index)
            total += tier["flat_amount"] or 0
        total += tier["unit_amount"]
    return total


tier_lists = st.lists(
    st.tuples(st.integers(1, 40), st.integers(0, 5_000), st.none() | st.integers(0, 2_000)),
    min_size=1,
    max_size=4,
).map(
    lambda rows: (
        [
            {"up_to": sum(r[0] for r in rows[: i + 1]), "unit_amount": r[1], "flat_amount": r[2]}
            for i, r in enumerate(rows[:-1])
        ]
        + [{"up_to": None, "unit_amount": rows[-1][1], "flat_amount": rows[-1][2]}]
    )
)


@given(tier_lists, st.sampled_from(["graduated", "volume"]), st.integers(0, 300))
def test_tiered_amount_matches_a_unit_by_unit_reference(tiers, mode, quantity):
    assert tiered_amount(tiers, mode, quantity) == _unit_by_unit(tiers, mode, quantity)
