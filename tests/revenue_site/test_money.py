from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from revenue_site.money import (
    ZERO_DECIMAL_CURRENCIES,
    CurrencyMismatchError,
    Money,
    MoneyError,
    allocate,
    apply_rate,
    currency_exponent,
    format_money,
    from_minor,
    split_with_platform_remainder,
    to_minor,
)

BIG = 10**18  # inside a BigIntegerField (< 2**63)
amounts = st.integers(min_value=-BIG, max_value=BIG)
rates = st.decimals(min_value=0, max_value=1, places=6, allow_nan=False, allow_infinity=False)
weights = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False),
)
currencies = st.sampled_from(["usd", "eur", "jpy", "krw", "clp", "bhd", "kwd", "gbp"])


# --- currencies and conversion ------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("usd", 2), ("EUR", 2), ("jpy", 0), ("krw", 0), ("xof", 0), ("bhd", 3), ("kwd", 3)],
)
def test_currency_exponent(currency, exponent):
    assert currency_exponent(currency) == exponent


def test_zero_decimal_currencies_agree_with_an_independent_list_and_are_whole_units():
    from djstripe.settings import djstripe_settings

    # dj-stripe keeps its own copy of Stripe's list; it lacks only UGX, which Stripe lists
    # as zero-decimal (https://docs.stripe.com/currencies#zero-decimal).
    theirs = djstripe_settings.ZERO_DECIMAL_CURRENCIES
    assert theirs <= ZERO_DECIMAL_CURRENCIES
    assert ZERO_DECIMAL_CURRENCIES - theirs == {"ugx"}
    for currency in ZERO_DECIMAL_CURRENCIES:
        assert currency_exponent(currency) == 0
        assert to_minor(Decimal("1200"), currency) == 1200
        assert from_minor(1200, currency) == Decimal("1200")
    assert to_minor(Decimal("12"), "usd") == 1200


@pytest.mark.parametrize("bad", ["us", "usdx", "u$d", "", "123"])
def test_malformed_currency_is_refused(bad):
    with pytest.raises(MoneyError):
        currency_exponent(bad)


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        (Decimal("12.34"), "usd", 1234),
        (Decimal("12.345"), "usd", 1235),  # half up
        (Decimal("-12.345"), "usd", -1235),  # half away from zero
        (Decimal("12.344"), "usd", 1234),
        (Decimal("1200"), "jpy", 1200),
        (Decimal("1200.5"), "jpy", 1201),
        (Decimal("1.2345"), "bhd", 1235),
        (7, "usd", 700),
    ],
)
def test_to_minor_rounds_half_up(value, currency, minor):
    assert to_minor(value, currency) == minor


def test_to_minor_takes_an_explicit_rounding_mode():
    assert to_minor(Decimal("0.125"), "usd", rounding=ROUND_HALF_EVEN) == 12
    assert to_minor(Decimal("0.125"), "usd", rounding=ROUND_HALF_UP) == 13
    assert to_minor(Decimal("0.129"), "usd", rounding=ROUND_DOWN) == 12


def test_from_minor_is_exact_and_keeps_the_currency_scale():
    assert from_minor(1234, "usd") == Decimal("12.34")
    assert str(from_minor(100, "usd")) == "1.00"
    assert str(from_minor(-5, "usd")) == "-0.05"
    assert str(from_minor(1200, "jpy")) == "1200"
    assert str(from_minor(1, "kwd")) == "0.001"


@given(amount=amounts, currency=currencies)
def test_from_minor_and_to_minor_round_trip(amount, currency):
    assert to_minor(from_minor(amount, currency), currency) == amount


@pytest.mark.parametrize(
    "call",
    [
        lambda: to_minor(12.34, "usd"),
        lambda: from_minor(12.5, "usd"),
        lambda: apply_rate(100, 0.3),
        lambda: apply_rate(100.0, Decimal("0.3")),
        lambda: allocate(100, [0.5, 0.5]),
        lambda: Money(1.5, "usd"),
        lambda: Money(True, "usd"),
    ],
)
def test_float_is_refused_everywhere(call):
    with pytest.raises(TypeError):
        call()


# --- rates --------------------------------------------------------------------------------


def test_apply_rate_rounds_half_up_by_default():
    assert apply_rate(1999, Decimal("0.3")) == 600  # 599.7
    assert apply_rate(5, Decimal("0.5")) == 3  # 2.5 -> 3
    assert apply_rate(-5, Decimal("0.5")) == -3
    assert apply_rate(5, Decimal("0.5"), rounding=ROUND_HALF_EVEN) == 2
    assert apply_rate(5, Decimal("0.5"), rounding=ROUND_DOWN) == 2


def test_apply_rate_is_exact_beyond_the_decimal_context_precision():
    # 19-digit amount times a 12-place rate: 31 significant digits, more than the default 28.
    amount = 9_223_372_036_854_775_807
    rate = Decimal("0.123456789012")
    assert apply_rate(amount, rate) == (amount * 123456789012 + 500000000000) // 10**12


def test_apply_rate_refuses_nan():
    with pytest.raises(MoneyError):
        apply_rate(100, Decimal("NaN"))


@given(amount=amounts, rate=rates)
def test_apply_rate_is_symmetric_and_within_half_a_unit(amount, rate):
    result = apply_rate(amount, rate)
    assert apply_rate(-amount, rate) == -result
    assert abs(Decimal(result) - Decimal(amount) * rate) <= Decimal("0.5")


# --- splits -------------------------------------------------------------------------------


@given(total=amounts, parts=st.lists(weights, min_size=1, max_size=8))
def test_allocate_parts_add_up_to_the_total(total, parts):
    assume(sum(parts) > 0)
    result = allocate(total, parts)
    assert sum(result) == total
    assert len(result) == len(parts)
    weight_sum = sum(Decimal(w) for w in parts)
    for part, weight in zip(result, parts, strict=True):
        exact = Decimal(abs(total)) * Decimal(weight) / weight_sum
        # Largest remainder: each part is its exact share rounded down or up, never further.
        assert abs(abs(part) - exact) < 1
        assert (part >= 0) if total >= 0 else (part <= 0)


def test_allocate_gives_leftover_units_to_the_largest_remainders():
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(10, [Decimal("0.15"), Decimal("0.85")]) == [2, 8]  # 1.5 / 8.5: tie -> first
    assert allocate(7, [0, 1, 1]) == [0, 4, 3]
    assert allocate(-100, [1, 1, 1]) == [-34, -33, -33]


def test_allocate_can_send_the_remainder_to_one_part():
    assert allocate(100, [1, 1, 1], remainder_to=2) == [33, 33, 34]


@pytest.mark.parametrize("bad", [[], [0, 0], [1, -1]])
def test_allocate_refuses_bad_weights(bad):
    with pytest.raises(MoneyError):
        allocate(100, bad)


@given(
    total=amounts,
    payee_rates=st.lists(rates, min_size=0, max_size=4),
)
def test_split_with_platform_remainder_adds_up(total, payee_rates):
    assume(sum(payee_rates) <= 1)
    shares = {f"payee{i}": rate for i, rate in enumerate(payee_rates)}
    parts = split_with_platform_remainder(total, shares)
    assert sum(parts.values()) == total
    assert set(parts) == {*shares, "platform"}
    for key, rate in shares.items():
        # A payee never gets more than its rate (rounded toward zero).
        assert abs(parts[key]) <= abs(Decimal(total) * rate)
        assert abs(Decimal(total) * rate) - abs(parts[key]) < 1
    # Mirror image for refunds.
    assert split_with_platform_remainder(-total, shares) == {k: -v for k, v in parts.items()}


def test_split_with_platform_remainder_gives_the_platform_the_leftover():
    parts = split_with_platform_remainder(
        1001, {"affiliate": Decimal("0.2"), "creator": Decimal("0.5")}
    )
    assert parts == {"affiliate": 200, "creator": 500, "platform": 301}
    assert split_with_platform_remainder(999, {"creator": Decimal("1")}) == {
        "creator": 999,
        "platform": 0,
    }
    assert split_with_platform_remainder(33, {}, platform="house") == {"house": 33}


@pytest.mark.parametrize(
    "shares",
    [
        {"a": Decimal("0.6"), "b": Decimal("0.5")},
        {"a": Decimal("-0.1")},
        {"a": Decimal("1.1")},
        {"platform": Decimal("0.1")},
    ],
)
def test_split_refuses_bad_shares(shares):
    with pytest.raises(MoneyError):
        split_with_platform_remainder(100, shares)


def test_split_in_a_zero_decimal_currency_uses_whole_yen():
    money = Money(1001, "jpy")
    assert money.allocate([1, 1]) == [Money(501, "jpy"), Money(500, "jpy")]
    assert split_with_platform_remainder(money.amount, {"creator": Decimal("0.7")}) == {
        "creator": 700,
        "platform": 301,
    }


# --- Money --------------------------------------------------------------------------------


def test_money_arithmetic_in_one_currency():
    assert Money(1999, "usd") + Money(1, "USD") == Money(2000, "usd")
    assert Money(5, "usd") - Money(7, "usd") == Money(-2, "usd")
    assert -Money(5, "usd") == Money(-5, "usd")
    assert Money(5, "usd") * 3 == 3 * Money(5, "usd") == Money(15, "usd")
    assert Money(1999, "usd").apply_rate(Decimal("0.3")) == Money(600, "usd")
    assert Money.sum([Money(1, "eur"), Money(2, "eur")], currency="eur") == Money(3, "eur")
    assert Money.from_decimal(Decimal("12.345"), "usd") == Money(1235, "usd")
    assert Money(1234, "usd").to_decimal() == Decimal("12.34")
    assert Money(1, "usd") < Money(2, "usd")
    assert not Money.zero("usd")


@pytest.mark.parametrize(
    "call",
    [
        lambda: Money(1, "usd") + Money(1, "eur"),
        lambda: Money(1, "usd") - Money(1, "eur"),
        lambda: Money(1, "usd") < Money(2, "eur"),
        lambda: Money.sum([Money(1, "usd"), Money(1, "eur")], currency="usd"),
    ],
)
def test_money_refuses_mixed_currencies(call):
    with pytest.raises(CurrencyMismatchError):
        call()


@given(a=amounts, b=amounts, currency=currencies, other=currencies)
def test_money_addition_is_exact_or_refused(a, b, currency, other):
    if currency == other:
        assert (Money(a, currency) + Money(b, other)).amount == a + b
    else:
        with pytest.raises(CurrencyMismatchError):
            Money(a, currency) + Money(b, other)


def test_money_is_frozen():
    money = Money(1, "usd")
    with pytest.raises(AttributeError):
        money.amount = 2  # type: ignore[misc]


def test_money_refuses_decimal_multiplication():
    with pytest.raises(TypeError):
        Money(10, "usd") * Decimal("1.5")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (123456, "usd", "$1,234.56"),
        (-5, "usd", "-$0.05"),
        (1200, "jpy", "¥1,200"),
        (1234567, "bhd", "1,234.567 BHD"),
        (100, "chf", "1.00 CHF"),
        (0, "eur", "€0.00"),
    ],
)
def test_format_money(amount, currency, text):
    assert format_money(amount, currency) == text


def test_format_money_with_code():
    assert format_money(1999, "usd", with_code=True) == "19.99 USD"
    assert str(Money(1999, "gbp")) == "£19.99"
