"""Tiered amounts against a unit-by-unit reference, in integers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstripe.pricing import tiered_amount


@st.composite
def tier_lists(draw):
    bounds = sorted(draw(st.sets(st.integers(1, 60), min_size=0, max_size=4)))
    amounts = st.one_of(st.none(), st.integers(0, 10_000))
    tiers = [
        {"up_to": up_to, "unit_amount": draw(amounts), "flat_amount": draw(amounts)}
        for up_to in [*bounds, "inf"]
    ]
    return tiers


def _bound(tier):
    return float("inf") if tier["up_to"] == "inf" else tier["up_to"]


def _tier_index(tiers, unit):
    return next(i for i, t in enumerate(tiers) if unit <= _bound(t))


@given(tiers=tier_lists(), quantity=st.integers(1, 200))
def test_graduated_prices_each_unit_in_its_tier_and_each_touched_tier_once(tiers, quantity):
    touched = {_tier_index(tiers, unit) for unit in range(1, quantity + 1)}
    expected = sum(
        tiers[_tier_index(tiers, unit)]["unit_amount"] or 0 for unit in range(1, quantity + 1)
    ) + sum(tiers[i]["flat_amount"] or 0 for i in touched)
    assert tiered_amount(tiers, "graduated", quantity) == expected


@given(tiers=tier_lists(), quantity=st.integers(1, 200))
def test_volume_prices_every_unit_at_the_tier_of_the_total(tiers, quantity):
    tier = tiers[_tier_index(tiers, quantity)]
    expected = (tier["unit_amount"] or 0) * quantity + (tier["flat_amount"] or 0)
    assert tiered_amount(tiers, "volume", quantity) == expected


def test_stripe_output_format_with_null_bounds_is_accepted():
    tiers = [{"up_to": 3, "unit_amount": 100}, {"up_to": None, "unit_amount": 50}]
    assert tiered_amount(tiers, "graduated", 5) == 3 * 100 + 2 * 50
    assert tiered_amount(tiers, "volume", 5) == 5 * 50


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError):
        tiered_amount([{"up_to": None, "unit_amount": 1}], "stairstep", 1)
