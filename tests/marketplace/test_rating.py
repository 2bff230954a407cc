"""The rating engine: every aggregation and price model against hand-computed cases, and
hypothesis at the tier and package boundaries and on combining hourly partials."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.rating import (
    Aggregation,
    Event,
    Graduated,
    MeterDefinition,
    Package,
    Partial,
    Percentage,
    PerUnit,
    Price,
    PriceTier,
    RatingError,
    Volume,
    aggregate,
    partial_aggregate,
    partial_value,
    partials_combine,
    rate,
    tiers_from_stripe,
    value_key,
)
from revenue_site.money import Money
from subscriptions.pricing import tiered_amount

D = Decimal
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return T0 + timedelta(hours=hour, minutes=minute)


EVENTS = [
    Event("e1", D(1), at(10), {"region": "eu", "user": "a", "amount": 1000}),
    Event("e2", D("2.5"), at(10, 30), {"region": "us", "user": "b", "amount": "250.50"}),
    Event("e3", D(4), at(11), {"region": "eu", "user": "a"}),
    Event("e4", D(0), at(11), {"region": "eu", "user": "c", "amount": 99.5}),
    Event("e5", D(3), at(9), {"region": "eu", "user": 1}),
]
EU = {"region": "eu"}


# --- Aggregations, by hand ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("meter", "expected"),
    [
        (MeterDefinition(Aggregation.COUNT), D(5)),
        (MeterDefinition(Aggregation.COUNT, filters=EU), D(4)),
        (MeterDefinition(Aggregation.SUM), D("10.5")),
        (MeterDefinition(Aggregation.SUM, filters=EU), D(8)),
        # 1000 + "250.50" + 99.5 (a float as a JSONField reads it back); e3 has no amount
        (MeterDefinition(Aggregation.SUM, property="amount"), D("1350.00")),
        (MeterDefinition(Aggregation.SUM, property="amount", filters=EU), D("1099.5")),
        (MeterDefinition(Aggregation.MAX), D(4)),
        (MeterDefinition(Aggregation.MAX, filters={"region": "us"}), D("2.5")),
        (MeterDefinition(Aggregation.MAX, property="amount"), D(1000)),
        # a, b, c and the number 1
        (MeterDefinition(Aggregation.UNIQUE_COUNT, property="user"), D(4)),
        (MeterDefinition(Aggregation.UNIQUE_COUNT, property="user", filters=EU), D(3)),
        (MeterDefinition(Aggregation.UNIQUE_COUNT, property="region"), D(2)),
        # e3 and e4 are both at 11:00: the greater id (e4) is the latest
        (MeterDefinition(Aggregation.LATEST), D(0)),
        (MeterDefinition(Aggregation.LATEST, filters={"user": "a"}), D(4)),
        (MeterDefinition(Aggregation.LATEST, property="amount"), D("99.5")),
    ],
)
def test_aggregation_by_hand(meter, expected):
    assert aggregate(meter, EVENTS) == expected
    assert aggregate(meter, reversed(EVENTS)) == expected


@pytest.mark.parametrize("aggregation", list(Aggregation))
def test_no_events_aggregate_to_zero(aggregation):
    prop = "user" if aggregation is Aggregation.UNIQUE_COUNT else None
    meter = MeterDefinition(aggregation, property=prop)
    assert aggregate(meter, []) == 0
    assert aggregate(MeterDefinition(aggregation, property=prop, filters={"x": 1}), EVENTS) == 0


def test_filters_compare_numbers_by_value_and_keep_strings_and_booleans_apart():
    events = [
        Event("a", D(1), at(0), {"plan": 1}),
        Event("b", D(1), at(0), {"plan": 1.0}),
        Event("c", D(1), at(0), {"plan": D("1.00")}),
        Event("d", D(1), at(0), {"plan": "1"}),
        Event("e", D(1), at(0), {"plan": True}),
        Event("f", D(1), at(0), {}),
        Event("g", D(1), at(0), {"plan": None}),
    ]
    count = Aggregation.COUNT
    assert aggregate(MeterDefinition(count, filters={"plan": 1}), events) == 3
    assert aggregate(MeterDefinition(count, filters={"plan": "1"}), events) == 1
    assert aggregate(MeterDefinition(count, filters={"plan": True}), events) == 1
    assert aggregate(MeterDefinition(count, filters={"plan": None}), events) == 1
    # 1, 1.0 and 1.00 are one value, "1" and True two others; null is no value
    unique = MeterDefinition(Aggregation.UNIQUE_COUNT, property="plan")
    assert aggregate(unique, events) == 3


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (1, "n:1"),
        (1.5, "n:1.5"),
        (D("1.50"), "n:1.5"),
        (100, "n:100"),
        (D("1E+2"), "n:100"),
        (D("-0.00"), "n:0"),
        ("100", "s:100"),
        (False, "b:false"),
        (None, "null"),
    ],
)
def test_value_keys_are_what_a_unique_count_rollup_stores(value, key):
    assert value_key(value) == key


def test_meter_definitions_that_make_no_sense_are_refused():
    with pytest.raises(RatingError):
        MeterDefinition(Aggregation.COUNT, property="user")
    with pytest.raises(RatingError):
        MeterDefinition(Aggregation.UNIQUE_COUNT)
    with pytest.raises(ValueError, match="median"):
        MeterDefinition("median")  # type: ignore[arg-type]
    with pytest.raises(RatingError):
        MeterDefinition(Aggregation.COUNT, filters={"tags": ["a"]})


def test_a_non_numeric_property_fails_rather_than_under_billing():
    meter = MeterDefinition(Aggregation.SUM, property="amount")
    for bad in ("ten", True, {"v": 1}, "NaN"):
        with pytest.raises(RatingError):
            aggregate(meter, [Event("x", D(1), at(0), {"amount": bad})])


def test_sums_are_exact_beyond_the_default_decimal_precision():
    events = [
        Event("a", D("12345678901234567890.123456789"), at(0)),
        Event("b", D("0.000000000000000000001"), at(0)),
    ]
    assert aggregate(MeterDefinition(Aggregation.SUM), events) == D(
        "12345678901234567890.123456789000000000001"
    )


# --- Hourly partials ----------------------------------------------------------------------


def test_unique_count_partials_keep_the_values_not_the_counts():
    # The same user in two hours is one user, not two.
    meter = MeterDefinition(Aggregation.UNIQUE_COUNT, property="user")
    hour_1 = partial_aggregate(meter, [Event("a", D(1), at(1), {"user": "u1"})])
    hour_2 = partial_aggregate(meter, [Event("b", D(1), at(2), {"user": "u1"})])
    assert partial_value(meter, hour_1) == partial_value(meter, hour_2) == 1
    assert partial_value(meter, partials_combine([hour_1, hour_2])) == 1


def test_latest_partial_keeps_timestamp_id_and_value():
    meter = MeterDefinition(Aggregation.LATEST)
    later = partial_aggregate(meter, [Event("a", D(7), at(5))])
    earlier = partial_aggregate(meter, [Event("z", D(9), at(4))])
    assert partial_value(meter, partials_combine([later, earlier])) == 7
    assert partials_combine([]) == Partial()


events_strategy = st.lists(
    st.builds(
        lambda hour, minute, quantity, user, region, amount: (
            hour,
            minute,
            quantity,
            {
                k: v
                for k, v in (("user", user), ("region", region), ("amount", amount))
                if v is not None
            },
        ),
        hour=st.integers(0, 5),
        minute=st.sampled_from([0, 30, 59]),  # few timestamps: ties on latest are common
        quantity=st.decimals(0, 1000, places=3),
        user=st.none() | st.sampled_from(["a", "b", "c", 1, 2]),
        region=st.none() | st.sampled_from(["eu", "us"]),
        amount=st.none() | st.integers(0, 10_000) | st.decimals(0, 100, places=2),
    ),
    max_size=40,
)

meters_strategy = st.builds(
    lambda aggregation, prop, filtered: MeterDefinition(
        aggregation,
        property=(
            "user"
            if aggregation is Aggregation.UNIQUE_COUNT
            else None
            if aggregation is Aggregation.COUNT
            else prop
        ),
        filters=EU if filtered else {},
    ),
    aggregation=st.sampled_from(list(Aggregation)),
    prop=st.none() | st.just("amount"),
    filtered=st.booleans(),
)


@given(raw=events_strategy, meter=meters_strategy, data=st.data())
def test_combining_hourly_partials_equals_aggregating_the_raw_events(raw, meter, data):
    events = [
        Event(f"ev{index:03}", quantity, at(hour, minute), properties)
        for index, (hour, minute, quantity, properties) in enumerate(raw)
    ]
    by_hour = defaultdict(list)
    for event in events:
        by_hour[event.timestamp.replace(minute=0)].append(event)
    partials = [partial_aggregate(meter, hour_events) for hour_events in by_hour.values()]
    shuffled = data.draw(st.permutations(partials))
    expected = aggregate(meter, events)
    assert partial_value(meter, partials_combine(shuffled)) == expected
    # combining is associative: partials of partials give the same value
    middle = len(shuffled) // 2
    nested = partials_combine(
        [partials_combine(shuffled[:middle]), partials_combine(shuffled[middle:])]
    )
    assert nested == partials_combine(partials)
    assert partial_value(meter, nested) == expected


# --- Price models, by hand ------------------------------------------------------------------

STEP_TIERS = (
    PriceTier(up_to=10, unit_amount=D(1000)),
    PriceTier(up_to=50, unit_amount=D(800), flat_amount=D(500)),
    PriceTier(up_to=None, unit_amount=D(500)),
)


def amount_of(model, quantity, currency="usd", **kwargs):
    return rate(Price(model, currency, **kwargs), quantity).amount


@pytest.mark.parametrize(
    ("quantity", "rounding", "expected"),
    [
        (0, None, 0),
        (1001, None, 350),  # 350.35 cents
        (1000, None, 350),
        (1001, ROUND_UP, 351),
        (D("10.5"), None, 4),  # 3.675 cents: sub-minor quantity too
        (10**15 + 1, None, 350_000_000_000_000),
    ],
)
def test_per_unit_with_a_sub_minor_unit_amount(quantity, rounding, expected):
    price = Price(PerUnit(D("0.35")), "usd", **({"rounding": rounding} if rounding else {}))
    assert rate(price, quantity).amount == expected


def test_per_unit_keeps_twelve_decimal_places_exactly():
    # 10**15 + 1 units at a trillionth of a cent: 1000.000000000001 cents, no precision lost
    rating = rate(Price(PerUnit(D("0.000000000001")), "usd"), 10**15 + 1)
    assert rating.exact_amount == D("1000.000000000001")
    assert rating.amount == 1000
    with pytest.raises(RatingError, match="12 decimal places"):
        PerUnit(D("0.0000000000001"))


def test_zero_decimal_currency_amounts_are_whole_yen():
    rating = rate(Price(PerUnit(D("0.35")), "JPY"), 1001)
    assert (rating.amount, rating.currency) == (350, "jpy")
    assert rating.money == Money(350, "jpy")
    assert rating.money.format() == "¥350"


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [(None, 5), (ROUND_HALF_EVEN, 4), (ROUND_DOWN, 4), (ROUND_UP, 5)],
)
def test_three_decimal_currency_amounts_are_fils(rounding, expected):
    # 3 units at 1.5 fils = 4.5 fils
    kwargs = {"rounding": rounding} if rounding else {}
    rating = rate(Price(PerUnit(D("1.5")), "bhd", **kwargs), 3)
    assert rating.amount == expected
    assert rating.money.format() == f"0.00{expected} BHD"


@pytest.mark.parametrize(
    ("quantity", "round_", "packages", "expected"),
    [
        (0, "up", 0, 0),
        (1, "up", 1, 500),
        (1000, "up", 1, 500),
        (1001, "up", 2, 1000),
        (D("1000.5"), "up", 2, 1000),
        (999, "down", 0, 0),
        (1000, "down", 1, 500),
        (1999, "down", 1, 500),
        (2000, "down", 2, 1000),
    ],
)
def test_package(quantity, round_, packages, expected):
    model = Package(package_size=1000, package_amount=D(500), round=round_)
    rating = rate(Price(model, "usd"), quantity)
    assert model.packages(D(quantity)) == packages
    assert rating.amount == expected
    assert [line.quantity for line in rating.lines] == ([packages] if packages else [])


@pytest.mark.parametrize(
    ("quantity", "expected", "tiers_used"),
    [
        (0, 0, []),
        (1, 1000, [1]),
        (10, 10_000, [1]),
        (11, 10_000 + 800 + 500, [1, 2]),
        (D("10.5"), 10_000 + 400 + 500, [1, 2]),
        (50, 10_000 + 32_000 + 500, [1, 2]),
        (60, 10_000 + 32_000 + 500 + 5_000, [1, 2, 3]),
    ],
)
def test_graduated(quantity, expected, tiers_used):
    rating = rate(Price(Graduated(STEP_TIERS), "usd"), quantity)
    assert rating.amount == expected
    assert [line.tier for line in rating.lines] == tiers_used
    assert sum(line.amount for line in rating.lines) == expected


def test_graduated_lines_say_what_each_tier_priced():
    rating = rate(Price(Graduated(STEP_TIERS), "usd"), 60)
    assert [(line.quantity, line.up_to, line.amount) for line in rating.lines] == [
        (10, 10, 10_000),
        (40, 50, 32_500),
        (10, None, 5_000),
    ]


def test_graduated_with_sub_minor_tiers_rounds_once_at_the_end():
    tiers = (PriceTier(up_to=1000, unit_amount=D("0.1")), PriceTier(None, D("0.0333")))
    rating = rate(Price(Graduated(tiers), "usd"), 1010)
    # 100 + 10 * 0.0333 = 100.333; rounding each line would give the same here, so check
    # a case where it would not: 3 lines of 0.4 each round to 0 alone, 1.2 → 1 together.
    assert rating.amount == 100
    tiny = (PriceTier(1, D("0.4")), PriceTier(2, D("0.4")), PriceTier(None, D("0.4")))
    rating = rate(Price(Graduated(tiny), "usd"), 3)
    assert rating.exact_amount == D("1.2")
    assert rating.amount == 1
    assert sorted(line.amount for line in rating.lines) == [0, 0, 1]


@pytest.mark.parametrize(
    ("quantity", "expected", "tier"),
    [
        (0, 0, None),
        (1, 1000, 1),
        (10, 10_000, 1),
        (11, 11 * 800 + 500, 2),  # 9,300: cheaper than 10 units (a documented tier drop)
        (50, 50 * 800 + 500, 2),
        (51, 51 * 500, 3),
        (60, 60 * 500, 3),
    ],
)
def test_volume(quantity, expected, tier):
    rating = rate(Price(Volume(STEP_TIERS), "usd"), quantity)
    assert rating.amount == expected
    assert [line.tier for line in rating.lines] == ([tier] if tier else [])


@pytest.mark.parametrize(
    ("base", "rounding", "expected"),
    [
        (123_456, None, 3086),  # 2.5 % of $1,234.56 = 3,086.4 cents
        (100, None, 3),  # 2.5 → 3 half up
        (100, ROUND_HALF_EVEN, 2),
        (100, ROUND_DOWN, 2),
        (D("1350.00"), None, 34),  # 33.75
        (0, None, 0),
    ],
)
def test_percentage_of_summed_amounts(base, rounding, expected):
    kwargs = {"rounding": rounding} if rounding else {}
    assert amount_of(Percentage(D("0.025")), base, **kwargs) == expected


def test_percentage_in_yen_of_a_property_sum():
    meter = MeterDefinition(Aggregation.SUM, property="amount")
    sales = [Event(str(n), D(1), at(n), {"amount": yen}) for n, yen in enumerate([1999, 2001, 5])]
    base = aggregate(meter, sales)  # ¥4,005
    rating = rate(Price(Percentage(D("0.029")), "jpy"), base)
    assert rating.exact_amount == D("116.145")
    assert rating.money == Money(116, "jpy")


# --- Free allowance -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "free", "billable", "expected"),
    [
        (0, 0, 0, 0),
        (800, 800, 0, 0),
        (1000, 1000, 0, 0),
        (1001, 1000, 1, 10),
        (1500, 1000, 500, 5000),
        (D("1000.5"), 1000, D("0.5"), 5),
    ],
)
def test_allowance_then_overage_per_unit(quantity, free, billable, expected):
    rating = rate(Price(PerUnit(D(10)), "usd", free_units=D(1000)), quantity)
    assert (rating.quantity, rating.free_quantity, rating.billable_quantity) == (
        quantity,
        free,
        billable,
    )
    assert rating.amount == expected
    assert bool(rating.lines) == bool(billable)


def test_allowance_is_taken_before_the_tiers():
    tiers = (PriceTier(up_to=10_000, unit_amount=D("0.1")), PriceTier(None, D("0.05")))
    graduated = rate(Price(Graduated(tiers), "usd", free_units=D(1000)), 12_000)
    assert graduated.billable_quantity == 11_000
    # billable units 1..10,000 at 0.1, 10,001..11,000 at 0.05
    assert graduated.amount == 1000 + 50
    volume = rate(Price(Volume(tiers), "usd", free_units=D(1000)), 12_000)
    assert volume.amount == 550  # 11,000 billable units all in tier 2
    assert rate(Price(Volume(tiers), "usd", free_units=D(1000)), 11_000).amount == 1000


def test_allowance_on_packages_and_percentages():
    package = Price(Package(100, D(250)), "usd", free_units=D(1000))
    assert rate(package, 1000).amount == 0
    assert rate(package, 1001).amount == 250
    fee = Price(Percentage(D("0.01")), "eur", free_units=D(100_000))  # first €1,000 free
    assert rate(fee, 150_000).amount == 500


# --- Validation -----------------------------------------------------------------------------


def test_bad_prices_and_quantities_are_refused():
    with pytest.raises(TypeError):
        rate(Price(PerUnit(D(1)), "usd"), 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PerUnit(0.35)  # type: ignore[arg-type]
    with pytest.raises(RatingError):
        rate(Price(PerUnit(D(1)), "usd"), -1)
    with pytest.raises(RatingError):
        PerUnit(D(-1))
    with pytest.raises(RatingError):
        Package(0, D(1))
    with pytest.raises(RatingError):
        Package(10, D(1), round="nearest")  # type: ignore[arg-type]
    with pytest.raises(RatingError):
        Price(PerUnit(D(1)), "usd", rounding="ROUND_SOMETIMES")
    with pytest.raises(ValueError, match="three-letter"):
        Price(PerUnit(D(1)), "dollars")
    with pytest.raises(RatingError):
        Price(PerUnit(D(1)), "usd", free_units=D(-1))


@pytest.mark.parametrize(
    "tiers",
    [
        (),
        (PriceTier(10, D(1)),),  # last tier not open-ended
        (PriceTier(None, D(1)), PriceTier(None, D(1))),
        (PriceTier(10, D(1)), PriceTier(10, D(1)), PriceTier(None, D(1))),
        (PriceTier(0, D(1)), PriceTier(None, D(1))),
    ],
)
def test_invalid_tiers_are_refused_as_subscriptions_refuses_them(tiers):
    with pytest.raises(RatingError):
        Graduated(tiers)
    with pytest.raises(RatingError):
        Volume(tiers)


def test_tiers_from_stripe_reads_inf_and_decimal_amounts():
    tiers = tiers_from_stripe(
        [
            {"up_to": 1000, "unit_amount_decimal": "0.125", "flat_amount": 100},
            {"up_to": "inf", "unit_amount": 0, "flat_amount_decimal": "99.5"},
        ]
    )
    assert tiers == (PriceTier(1000, D("0.125"), D(100)), PriceTier(None, D(0), D("99.5")))
    # 1000 * 0.125 + 100 + 99.5
    assert rate(Price(Graduated(tiers), "usd"), 1001).amount == 325


# --- Hypothesis at the boundaries -----------------------------------------------------------


@st.composite
def tier_tables(draw, places=3):
    bounds = sorted(draw(st.sets(st.integers(1, 60), max_size=4)))
    amounts = st.decimals(0, 50, places=places)
    flats = st.decimals(0, 200, places=places)
    tiers = [PriceTier(up_to, draw(amounts), draw(flats)) for up_to in bounds]
    return (*tiers, PriceTier(None, draw(amounts), draw(flats)))


def unit_by_unit(tiers, quantity):
    """Reference graduated total: each unit at the price of the tier holding it, each tier's
    flat fee on its first unit."""
    total = D(0)
    for unit in range(1, quantity + 1):
        lower = 0
        for tier in tiers:
            if tier.up_to is None or unit <= tier.up_to:
                total += tier.unit_amount + (tier.flat_amount if unit == lower + 1 else 0)
                break
            lower = tier.up_to
    return total


@given(tiers=tier_tables(), quantity=st.integers(0, 80))
def test_graduated_total_equals_a_unit_by_unit_reference(tiers, quantity):
    rating = rate(Price(Graduated(tiers), "usd"), quantity)
    assert rating.exact_amount == unit_by_unit(tiers, quantity)
    assert rating.amount == int(unit_by_unit(tiers, quantity).to_integral_value("ROUND_HALF_UP"))
    assert sum(line.amount for line in rating.lines) == rating.amount
    # each line's share stays next to its exact amount (within the rounding of the total and
    # of the split)
    assert all(abs(line.amount - line.exact_amount) < D("1.5") for line in rating.lines)


@given(tiers=tier_tables(places=0), quantity=st.integers(0, 80), volume=st.booleans())
def test_integer_tiers_price_as_subscriptions_pricing_does(tiers, quantity, volume):
    stripe_tiers = [
        {"up_to": t.up_to, "unit_amount": int(t.unit_amount), "flat_amount": int(t.flat_amount)}
        for t in tiers
    ]
    model = Volume(tiers) if volume else Graduated(tiers)
    mode = "volume" if volume else "graduated"
    assert rate(Price(model, "usd"), quantity).amount == tiered_amount(stripe_tiers, mode, quantity)


@given(tiers=tier_tables(), quantity=st.integers(0, 79))
def test_volume_rises_within_a_tier_and_only_drops_when_crossing_one(tiers, quantity):
    price = Price(Volume(tiers), "usd")
    here, there = rate(price, quantity), rate(price, quantity + 1)
    tier_here = here.lines[0].tier if here.lines else None
    tier_there = there.lines[0].tier
    if tier_here == tier_there:
        assert there.exact_amount >= here.exact_amount
    # every unit at the tier the total falls in, plus its flat fee
    line = there.lines[0]
    assert there.exact_amount == (quantity + 1) * line.unit_amount + line.flat_amount
    assert line.up_to is None or quantity + 1 <= line.up_to
    previous_bound = tiers[line.tier - 2].up_to if line.tier > 1 else 0
    assert quantity + 1 > previous_bound


@given(
    size=st.integers(1, 10_000),
    packages=st.integers(0, 1000),
    rest=st.integers(0, 9_999),
    amount=st.decimals(0, 10_000, places=4),
)
def test_package_boundaries(size, packages, rest, amount):
    rest %= size
    quantity = packages * size + rest
    up = rate(Price(Package(size, amount, "up"), "usd"), quantity)
    down = rate(Price(Package(size, amount, "down"), "usd"), quantity)
    assert down.exact_amount == packages * amount
    assert up.exact_amount == (packages + (1 if rest else 0)) * amount


@given(
    quantity=st.decimals(0, 10**9, places=3),
    free=st.decimals(0, 10**6, places=2),
    unit=st.decimals(0, 1000, places=6),
)
def test_allowance_never_bills_free_units_and_overage_is_the_rest(quantity, free, unit):
    rating = rate(Price(PerUnit(unit), "bhd", free_units=free), quantity)
    assert rating.free_quantity == min(quantity, free)
    assert rating.billable_quantity == max(quantity - free, 0)
    assert rating.exact_amount == rating.billable_quantity * unit
    assert abs(rating.amount - rating.exact_amount) <= D("0.5")


@given(base=st.integers(0, 10**12), rate_=st.decimals(0, 1, places=5))
def test_percentage_rounds_half_up_once(base, rate_):
    rating = rate(Price(Percentage(rate_), "usd"), base)
    exact = base * rate_
    assert rating.exact_amount == exact
    assert rating.amount == int(exact.to_integral_value("ROUND_HALF_UP"))
