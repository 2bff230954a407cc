"""Money: integer minor units plus a lowercase ISO 4217 currency (DESIGN.md §3).

Every conversion and rounding in the money paths lives here, with an explicit rounding mode:

- amounts are ``int`` minor units (cents, yen, fils), as Stripe sends them and as the ledger
  stores them (``BigIntegerField``); rates (commission %, platform fee %) are ``Decimal``;
- no ``float`` is accepted anywhere: a float argument raises ``TypeError``;
- rate arithmetic is exact: a ``Decimal`` rate is turned into an integer fraction and divided
  once, so there is no precision limit from the decimal context;
- the default rounding is ``ROUND_HALF_UP`` (half away from zero, what people expect on an
  invoice); splits round payee parts toward zero and give the leftover to the platform, so the
  parts always add up to the whole and a payee is never paid a unit more than their rate.

Rounding is symmetric around zero (``apply_rate(-x, r) == -apply_rate(x, r)``), so a refund
computed with the same rate exactly mirrors the charge it reverses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
)

__all__ = [
    "DEFAULT_ROUNDING",
    "THREE_DECIMAL_CURRENCIES",
    "ZERO_DECIMAL_CURRENCIES",
    "CurrencyMismatchError",
    "Money",
    "MoneyError",
    "allocate",
    "apply_rate",
    "currency_exponent",
    "format_money",
    "from_minor",
    "normalize_currency",
    "split_with_platform_remainder",
    "to_minor",
]

DEFAULT_ROUNDING = ROUND_HALF_UP

# Stripe's list of zero-decimal currencies: amounts are whole units (¥100 is `100`).
# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)
# Three-decimal currencies: 1 BHD is 1000 fils.
THREE_DECIMAL_CURRENCIES = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

_CURRENCY_RE = re.compile(r"^[a-z]{3}$")
_ROUNDINGS = frozenset(
    {
        ROUND_HALF_UP,
        ROUND_HALF_EVEN,
        ROUND_HALF_DOWN,
        ROUND_DOWN,
        ROUND_UP,
        ROUND_FLOOR,
        ROUND_CEILING,
    }
)

# A few display symbols; every other currency shows its upper-case code after the number.
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "krw": "₩", "inr": "₹"}


class MoneyError(ValueError):
    """Bad money input: a malformed currency, a non-integer amount, an invalid rate."""


class CurrencyMismatchError(MoneyError):
    """Arithmetic or comparison between amounts in different currencies."""


def normalize_currency(currency: str) -> str:
    """Return the lowercase ISO 4217 code, or raise MoneyError if it is not three letters."""
    if not isinstance(currency, str):
        raise MoneyError(f"currency must be a str, not {type(currency).__name__}")
    code = currency.strip().lower()
    if not _CURRENCY_RE.match(code):
        raise MoneyError(f"{currency!r} is not a three-letter ISO 4217 currency code")
    return code


def currency_exponent(currency: str) -> int:
    """Number of minor-unit digits: 0 for jpy/krw/…, 3 for bhd/kwd/…, otherwise 2."""
    code = normalize_currency(currency)
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def _check_int(value: object, name: str = "amount") -> int:
    # bool is an int subclass; True cents is always a bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int of minor units, not {type(value).__name__}")
    return value


def _ratio(value: Decimal | int, name: str) -> tuple[int, int]:
    """An exact (numerator, denominator > 0) for a Decimal or int; floats are refused."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{name} must be a Decimal or int, not {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise MoneyError(f"{name} must be finite, not {value}")
    return value.as_integer_ratio()


def _check_rounding(rounding: str) -> str:
    if rounding not in _ROUNDINGS:
        raise MoneyError(f"unsupported rounding mode {rounding!r}")
    return rounding


def _round_div(numerator: int, denominator: int, rounding: str) -> int:
    """numerator / denominator rounded to an int with a decimal-module rounding mode."""
    if denominator <= 0:
        raise MoneyError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder:
        twice = 2 * remainder
        if rounding == ROUND_UP:
            quotient += 1
        elif rounding == ROUND_HALF_UP:
            quotient += twice >= denominator
        elif rounding == ROUND_HALF_DOWN:
            quotient += twice > denominator
        elif rounding == ROUND_HALF_EVEN:
            quotient += twice > denominator or (twice == denominator and quotient % 2 == 1)
        elif rounding == ROUND_CEILING:
            quotient += sign > 0
        elif rounding == ROUND_FLOOR:
            quotient += sign < 0
        else:
            _check_rounding(rounding)  # ROUND_DOWN truncates: nothing to add
    return sign * quotient


def to_minor(value: Decimal | int, currency: str, *, rounding: str = DEFAULT_ROUNDING) -> int:
    """Major units (``Decimal("12.345")``) to minor units (``1235`` for usd, half up)."""
    numerator, denominator = _ratio(value, "value")
    scale = 10 ** currency_exponent(currency)
    return _round_div(numerator * scale, denominator, _check_rounding(rounding))


def from_minor(amount: int, currency: str) -> Decimal:
    """Minor units to an exact Decimal in major units: ``from_minor(1234, "usd") == 12.34``."""
    _check_int(amount)
    exponent = currency_exponent(currency)
    # The Decimal constructor is exact (no context rounding), and keeps the currency's scale.
    return Decimal(f"{amount}e-{exponent}")


def apply_rate(amount: int, rate: Decimal | int, *, rounding: str = DEFAULT_ROUNDING) -> int:
    """``amount * rate`` rounded to whole minor units with an explicit mode (half up by default).

    ``apply_rate(1999, Decimal("0.3")) == 600`` (599.7 → 600).
    """
    _check_int(amount)
    numerator, denominator = _ratio(rate, "rate")
    return _round_div(amount * numerator, denominator, _check_rounding(rounding))


def allocate(
    total: int, weights: Sequence[Decimal | int], *, remainder_to: int | None = None
) -> list[int]:
    """Split ``total`` in proportion to ``weights``; the parts always sum exactly to ``total``.

    Each part first gets its proportional share rounded toward zero. The units left over go,
    one each, to the parts with the largest fractional remainders (ties to the earlier
    weight) — the largest-remainder method — or all to ``weights[remainder_to]`` when given.
    A negative total is split as the mirror image of the positive one. Weights must be
    non-negative with a positive sum; a zero weight always gets 0 unless it takes the remainder.
    """
    _check_int(total, "total")
    if not weights:
        raise MoneyError("allocate needs at least one weight")
    ratios = [_ratio(weight, "weight") for weight in weights]
    if any(numerator < 0 for numerator, _ in ratios):
        raise MoneyError("weights must not be negative")
    if remainder_to is not None and not 0 <= remainder_to < len(weights):
        raise MoneyError("remainder_to is not an index of weights")
    # Put every weight over one common denominator so the shares are exact integer fractions.
    common = math.lcm(*(denominator for _, denominator in ratios))
    scaled = [numerator * (common // denominator) for numerator, denominator in ratios]
    weight_sum = sum(scaled)
    if weight_sum <= 0:
        raise MoneyError("weights must have a positive sum")

    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    parts: list[int] = []
    remainders: list[int] = []
    for weight in scaled:
        quotient, remainder = divmod(magnitude * weight, weight_sum)
        parts.append(quotient)
        remainders.append(remainder)
    leftover = magnitude - sum(parts)
    if remainder_to is not None:
        parts[remainder_to] += leftover
    else:
        # leftover < len(weights): each of the largest remainders gets one more unit.
        order = sorted(range(len(parts)), key=lambda index: (-remainders[index], index))
        for index in order[:leftover]:
            parts[index] += 1
    return [sign * part for part in parts]


def split_with_platform_remainder(
    total: int, shares: Mapping[str, Decimal], *, platform: str = "platform"
) -> dict[str, int]:
    """Split a charge between payees at their rates; the platform gets what is left.

    ``shares`` maps each payee key (e.g. ``"affiliate"``, ``"creator"``) to its rate of the
    total (``Decimal("0.30")``); the rates must be in [0, 1] and sum to at most 1. Each payee's
    part is ``total * rate`` rounded toward zero, so a payee never gets more than its rate, and
    the ``platform`` key receives ``total - sum(payee parts)``. The result holds every payee key
    plus ``platform`` and its values sum exactly to ``total``.

    >>> split_with_platform_remainder(1001, {"creator": Decimal("0.7")})
    {'creator': 700, 'platform': 301}
    """
    _check_int(total, "total")
    if platform in shares:
        raise MoneyError(f"{platform!r} takes the remainder; do not give it a rate")
    rate_sum = Decimal(0)
    for key, rate in shares.items():
        numerator, _ = _ratio(rate, f"rate for {key!r}")
        if numerator < 0 or rate > 1:
            raise MoneyError(f"rate for {key!r} must be between 0 and 1, not {rate}")
        rate_sum += rate
    if rate_sum > 1:
        raise MoneyError(f"rates sum to {rate_sum}, more than the whole")
    parts = {key: apply_rate(total, rate, rounding=ROUND_DOWN) for key, rate in shares.items()}
    parts[platform] = total - sum(parts.values())
    return parts


def format_money(amount: int, currency: str, *, with_code: bool = False) -> str:
    """Display text: ``format_money(123456, "usd") == "$1,234.56"``, ``"¥1,200"`` for jpy,
    ``"1,234.567 BHD"`` for currencies without a symbol (or with ``with_code=True``)."""
    code = normalize_currency(currency)
    value = from_minor(amount, code)
    exponent = currency_exponent(code)
    number = f"{abs(value):,.{exponent}f}"
    sign = "-" if amount < 0 else ""
    symbol = _SYMBOLS.get(code)
    if symbol and not with_code:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {code.upper()}"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of minor units in one currency. Arithmetic refuses to mix currencies.

    ``Money(1999, "usd") + Money(1, "usd") == Money(2000, "usd")``;
    ``Money(1, "usd") + Money(1, "eur")`` raises CurrencyMismatchError.
    """

    amount: int
    currency: str

    def __post_init__(self) -> None:
        _check_int(self.amount)
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def from_decimal(
        cls, value: Decimal | int, currency: str, *, rounding: str = DEFAULT_ROUNDING
    ) -> Money:
        """``Money.from_decimal(Decimal("12.34"), "usd") == Money(1234, "usd")``."""
        return cls(to_minor(value, currency, rounding=rounding), currency)

    @classmethod
    def sum(cls, items: Iterable[Money], *, currency: str) -> Money:
        """Add up items (all in ``currency``); an empty iterable gives zero."""
        result = cls.zero(currency)
        for item in items:
            result = result + item
        return result

    def to_decimal(self) -> Decimal:
        return from_minor(self.amount, self.currency)

    def apply_rate(self, rate: Decimal | int, *, rounding: str = DEFAULT_ROUNDING) -> Money:
        return Money(apply_rate(self.amount, rate, rounding=rounding), self.currency)

    def allocate(
        self, weights: Sequence[Decimal | int], *, remainder_to: int | None = None
    ) -> list[Money]:
        parts = allocate(self.amount, weights, remainder_to=remainder_to)
        return [Money(part, self.currency) for part in parts]

    def format(self, *, with_code: bool = False) -> str:
        return format_money(self.amount, self.currency, with_code=with_code)

    def _same_currency(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(
                f"cannot combine {self.currency} with {other.currency} without a conversion"
            )
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same_currency(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same_currency(other).amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        # Only whole multiples: a Decimal rate needs a rounding mode, see apply_rate().
        return Money(self.amount * _check_int(factor, "factor"), self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __bool__(self) -> bool:
        return self.amount != 0

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same_currency(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same_currency(other).amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same_currency(other).amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same_currency(other).amount

    def __str__(self) -> str:
        return self.format()
