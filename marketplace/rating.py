"""Rating: usage events → an aggregated quantity → money. Pure functions, no database.

Nothing here knows what a meter measures (API calls, gigabytes, transaction amounts, minutes of
content): a meter is an aggregation of event quantities or of one event property, and a price
turns the aggregated quantity into integer minor units (``revenue_site.money``).

**Aggregation** (``MeterDefinition``, ``aggregate``): ``count``, ``sum``, ``max``,
``unique_count`` (distinct values of a property) and ``latest`` (the value of the latest event
by timestamp, ties broken by the greater event id), over the events whose properties equal the
meter's filters. ``sum``, ``max`` and ``latest`` read the event's quantity, or a numeric property
when the meter names one; an event without that property is left out. No events → 0.

**Hourly partials** (``Partial``, ``partial_aggregate``, ``partials_combine``, ``partial_value``):
what a rollup row per (customer, meter, hour) keeps so a period's value never rescans raw events.
count, sum and max combine from their own columns; latest keeps the (timestamp, event id, value)
of its latest event; unique_count keeps the *set* of distinct values, because distinct counts do
not add up across hours (the same user in two hours counts once). Combining is associative and
commutative, so partials may arrive and be merged in any order.

**Prices** (``PerUnit``, ``Package``, ``Graduated``, ``Volume``, ``Percentage``), wrapped in a
``Price`` with its currency, a free allowance per period and a rounding mode; ``rate`` prices a
quantity and returns a ``Rating`` with one line per priced tier. Amounts inside a price are minor
units as ``Decimal`` (Stripe's ``unit_amount_decimal``: sub-minor prices such as 0.35 cents are
allowed). Tiers follow ``subscriptions.pricing``: ``up_to`` inclusive, ``None`` for the
open-ended last tier, the same validity rules (``tiers_parse``); graduated charges a tier's flat
fee when any unit falls inside it; volume prices every unit at the tier the total falls in, and
zero units cost nothing (no flat fee).

**Free allowance**: ``Price.free_units`` are taken off the aggregated quantity first, and the
price model sees only what is left (``billable_quantity``). For graduated and volume tiers that
means tier 1 starts at the first *billable* unit, not the first used one: 1,000 free calls then
"first 10,000 at 0.1¢" bills calls 1,001 to 11,000 at 0.1¢. This is what "the plan includes N calls,
overage is priced by the usage plan" means to a customer, and it keeps the allowance independent
of the tier table (the alternative, free units eating into tier 1, silently changes the tier
prices whenever the allowance changes).

**Rounding**: all arithmetic is exact ``Decimal`` (an unlimited-precision context that traps any
inexact result); the total is rounded once, at the end, with the price's rounding mode
(``ROUND_HALF_UP`` by default) through ``revenue_site.money.apply_rate``. Each line's integer
``amount`` is its share of that rounded total (``money.allocate``), so lines always add up to the
total and a period close can send them as invoice items unchanged. ``float`` is refused
everywhere except as a property value read back from JSON (see ``to_decimal``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    Decimal,
    Inexact,
    Rounded,
    localcontext,
)
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal, Protocol

from revenue_site.money import (
    DEFAULT_ROUNDING,
    Money,
    MoneyError,
    allocate,
    apply_rate,
    normalize_currency,
)
from subscriptions.pricing import TiersError, tier_up_to, tiers_parse

__all__ = [
    "Aggregation",
    "Event",
    "Graduated",
    "LatestValue",
    "MeterDefinition",
    "Package",
    "Partial",
    "PerUnit",
    "Percentage",
    "Price",
    "PriceModel",
    "PriceTier",
    "Rating",
    "RatingError",
    "RatingLine",
    "UsageEvent",
    "Volume",
    "aggregate",
    "partial_aggregate",
    "partial_value",
    "partials_combine",
    "rate",
    "tiers_from_stripe",
    "to_decimal",
    "value_key",
]

# Stripe takes unit_amount_decimal / flat_amount_decimal with at most 12 decimal places.
MAX_AMOUNT_PLACES = 12


class RatingError(ValueError):
    """A meter, price or event that cannot be rated (the message says why)."""


# --- Exact decimals --------------------------------------------------------------------------


@contextmanager
def _exact() -> Iterator[None]:
    """A decimal context where +, -, * and // are exact or raise: nothing is rounded silently."""
    with localcontext() as context:
        context.prec = MAX_PREC
        context.Emax = MAX_EMAX
        context.Emin = MIN_EMIN
        context.traps[Inexact] = True
        context.traps[Rounded] = True
        yield


def to_decimal(value: object, name: str = "value") -> Decimal:
    """An exact Decimal from an int, a Decimal or a numeric string.

    A ``float`` is accepted only because a JSON number read back from a JSONField is one: it is
    read through its shortest repr, which is the JSON literal it was parsed from, and no float
    arithmetic happens. ``bool``, NaN and infinities are refused (RatingError).
    """
    if isinstance(value, bool):
        raise RatingError(f"{name} must be a number, not a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except ArithmeticError:
            raise RatingError(f"{name} {value!r} is not a number") from None
    else:
        raise RatingError(f"{name} must be a number, not {type(value).__name__}")
    if not result.is_finite():
        raise RatingError(f"{name} must be finite, not {value!r}")
    return result


def _amount(value: Decimal | int, name: str, *, places: int | None = MAX_AMOUNT_PLACES) -> Decimal:
    """A non-negative Decimal price component; floats raise TypeError, as in money."""
    if isinstance(value, float):
        raise TypeError(f"{name} must be a Decimal or int, not float")
    result = to_decimal(value, name)
    if result < 0:
        raise RatingError(f"{name} must not be negative, not {value}")
    exponent = result.as_tuple().exponent
    if places is not None and isinstance(exponent, int) and -exponent > places:
        raise RatingError(f"{name} has more than {places} decimal places (Stripe's limit)")
    return result


def _round(value: Decimal, rounding: str) -> int:
    # money's exact integer-ratio rounding: one implementation of every rounding mode.
    return apply_rate(1, value, rounding=rounding)


# --- Events and meters ---------------------------------------------------------------------


class UsageEvent(Protocol):
    """What rating reads from an event; a stored event row with these attributes will do."""

    @property
    def id(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def properties(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Event:
    """One usage event: its id (the client's, unique per customer), a quantity ≥ 0, an aware
    timestamp and free-form properties (JSON values)."""

    id: str
    quantity: Decimal
    timestamp: datetime
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False)


class Aggregation(StrEnum):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"


def value_key(value: object, name: str = "value") -> str:
    """A JSON scalar as a comparable text key, for filters and distinct values (a rollup of a
    unique_count meter stores these keys). Numbers compare by value: ``1``, ``1.0`` and
    ``Decimal("1.00")`` are all ``"n:1"``; the string ``"1"`` is ``"s:1"``; booleans stay apart
    from numbers (``"b:true"``: True is not 1); null is ``"null"``. Lists and objects raise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, int | float | Decimal):
        number = to_decimal(value, name)
        # normalize() drops trailing zeros (1.00 → 1); "f" keeps 100 from printing as 1E+2;
        # a zero of any sign or scale is one value.
        return "n:0" if number == 0 else f"n:{number.normalize():f}"
    if isinstance(value, str):
        return f"s:{value}"
    raise RatingError(f"{name} must be a JSON scalar, not {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class MeterDefinition:
    """How a meter aggregates events. It does not know what it measures.

    ``property``: for sum, max and latest, the numeric property to read instead of the event's
    quantity (e.g. ``"amount"`` for a percentage of transaction amounts); required for
    unique_count (whose distinct values are counted); not allowed for count.
    ``filters``: property → value; an event counts only if every named property equals its
    value (numbers by value, strings exactly, booleans apart from numbers; a missing property
    never matches).
    """

    aggregation: Aggregation
    property: str | None = None
    filters: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "aggregation", Aggregation(self.aggregation))
        if self.aggregation is Aggregation.COUNT and self.property is not None:
            raise RatingError("a count meter counts events; it reads no property")
        if self.aggregation is Aggregation.UNIQUE_COUNT and not self.property:
            raise RatingError("a unique_count meter needs the property whose values it counts")
        filters = {key: value_key(value, f"filter {key!r}") for key, value in self.filters.items()}
        # Stored canonical and read-only: a meter cannot change under a running aggregation.
        object.__setattr__(self, "filters", MappingProxyType(filters))

    def matches(self, event: UsageEvent) -> bool:
        """Whether the event passes every filter."""
        properties = event.properties
        for key, wanted in self.filters.items():
            if key not in properties:
                return False
            if value_key(properties[key], f"property {key!r}") != wanted:
                return False
        return True

    def value(self, event: UsageEvent) -> Decimal | None:
        """The number this meter reads from the event (its quantity, or its property), or None
        when the property is missing or null. A non-numeric property raises RatingError: the
        meter would otherwise under-bill in silence."""
        if self.property is None:
            return to_decimal(event.quantity, "quantity")
        raw = event.properties.get(self.property)
        if raw is None:
            return None
        return to_decimal(raw, f"property {self.property!r} of event {event.id!r}")


@dataclass(frozen=True, slots=True, order=True)
class LatestValue:
    """The latest event's value; ordered by (timestamp, event id), so ``max`` picks the latest."""

    timestamp: datetime
    event_id: str
    value: Decimal = field(compare=False)


@dataclass(frozen=True, slots=True)
class Partial:
    """The aggregate of some events (an hour's rollup) from which a period value is combined.

    A rollup row keeps these fields: ``count`` and ``sum`` add, ``max`` takes the greater,
    ``latest`` keeps its (timestamp, event id, value), and ``distinct`` keeps the set of the
    property's distinct values as ``value_key`` texts (unique_count meters only: counts of
    distinct values cannot be combined, the values can). ``max``/``latest`` are None when no
    event counted.
    """

    count: int = 0
    sum: Decimal = Decimal(0)
    max: Decimal | None = None
    latest: LatestValue | None = None
    distinct: frozenset[str] = frozenset()


def partial_aggregate(meter: MeterDefinition, events: Iterable[UsageEvent]) -> Partial:
    """The partial aggregate of ``events`` (e.g. one hour's) for ``meter``."""
    count = 0
    total = Decimal(0)
    maximum: Decimal | None = None
    latest: LatestValue | None = None
    distinct: set[str] = set()
    with _exact():
        for event in events:
            if not meter.matches(event):
                continue
            if meter.aggregation is Aggregation.UNIQUE_COUNT:
                assert meter.property is not None  # noqa: S101 (checked in __post_init__)
                if event.properties.get(meter.property) is None:
                    continue
                distinct.add(value_key(event.properties[meter.property], meter.property))
                count += 1
                continue
            value = Decimal(1) if meter.aggregation is Aggregation.COUNT else meter.value(event)
            if value is None:
                continue
            count += 1
            total += value
            maximum = value if maximum is None else max(maximum, value)
            candidate = LatestValue(event.timestamp, str(event.id), value)
            latest = candidate if latest is None else max(latest, candidate)
    return Partial(count, total, maximum, latest, frozenset(distinct))


def partials_combine(partials: Iterable[Partial]) -> Partial:
    """One partial from many (hours → a period). Associative and commutative."""
    count = 0
    total = Decimal(0)
    maximum: Decimal | None = None
    latest: LatestValue | None = None
    distinct: set[str] = set()
    with _exact():
        for partial in partials:
            count += partial.count
            total += partial.sum
            if partial.max is not None:
                maximum = partial.max if maximum is None else max(maximum, partial.max)
            if partial.latest is not None:
                latest = partial.latest if latest is None else max(latest, partial.latest)
            distinct |= partial.distinct
    return Partial(count, total, maximum, latest, frozenset(distinct))


def partial_value(meter: MeterDefinition, partial: Partial) -> Decimal:
    """The meter's aggregated quantity from a (combined) partial; 0 when no event counted."""
    match meter.aggregation:
        case Aggregation.COUNT:
            return Decimal(partial.count)
        case Aggregation.SUM:
            return partial.sum
        case Aggregation.MAX:
            return Decimal(0) if partial.max is None else partial.max
        case Aggregation.UNIQUE_COUNT:
            return Decimal(len(partial.distinct))
        case Aggregation.LATEST:
            return Decimal(0) if partial.latest is None else partial.latest.value
    raise RatingError(f"unknown aggregation {meter.aggregation!r}")  # pragma: no cover


def aggregate(meter: MeterDefinition, events: Iterable[UsageEvent]) -> Decimal:
    """The meter's aggregated quantity over raw events; 0 when none counts."""
    return partial_value(meter, partial_aggregate(meter, events))


# --- Price models --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriceTier:
    """One tier, as in ``subscriptions.pricing``: ``up_to`` inclusive (None: open-ended last
    tier); amounts in minor units, ``unit_amount`` possibly sub-minor."""

    up_to: int | None
    unit_amount: Decimal = Decimal(0)
    flat_amount: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit_amount", _amount(self.unit_amount, "unit_amount"))
        object.__setattr__(self, "flat_amount", _amount(self.flat_amount, "flat_amount"))


def _check_tiers(tiers: Sequence[PriceTier]) -> tuple[PriceTier, ...]:
    """Tiers valid by ``subscriptions.pricing.tiers_parse`` (the one definition: ascending
    positive integer ``up_to``, open-ended last tier); amounts were checked by PriceTier."""
    if not all(isinstance(tier, PriceTier) for tier in tiers):
        raise RatingError("tiers must be PriceTier values (see tiers_from_stripe)")
    try:
        tiers_parse([{"up_to": tier.up_to, "unit_amount": 0} for tier in tiers])
    except TiersError as exc:
        raise RatingError(str(exc)) from exc
    return tuple(tiers)


def tiers_from_stripe(tiers: Sequence[Mapping[str, Any]]) -> tuple[PriceTier, ...]:
    """Tiers in Stripe's shape (``up_to`` int, null or ``"inf"``; ``unit_amount`` or
    ``unit_amount_decimal``; ``flat_amount`` or ``flat_amount_decimal``) as PriceTiers."""

    def pick(tier: Mapping[str, Any], key: str) -> Decimal:
        exact = tier.get(f"{key}_decimal")
        if exact not in (None, ""):
            return to_decimal(str(exact), f"{key}_decimal")
        return to_decimal(tier.get(key) or 0, key)

    return _check_tiers(
        [
            PriceTier(
                up_to=tier_up_to(tier.get("up_to")),
                unit_amount=pick(tier, "unit_amount"),
                flat_amount=pick(tier, "flat_amount"),
            )
            for tier in tiers
        ]
    )


@dataclass(frozen=True, slots=True)
class PerUnit:
    """``unit_amount`` minor units per unit (Stripe's ``unit_amount_decimal``, may be 0.35)."""

    unit_amount: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit_amount", _amount(self.unit_amount, "unit_amount"))


@dataclass(frozen=True, slots=True)
class Package:
    """``package_amount`` minor units per started (``round="up"``) or completed
    (``round="down"``) package of ``package_size`` units, as Stripe's
    ``transform_quantity[divide_by]`` with ``round`` up or down."""

    package_size: int
    package_amount: Decimal
    round: Literal["up", "down"] = "up"

    def __post_init__(self) -> None:
        if (
            isinstance(self.package_size, bool)
            or not isinstance(self.package_size, int)
            or self.package_size < 1
        ):
            raise RatingError("package_size must be a positive integer")
        object.__setattr__(self, "package_amount", _amount(self.package_amount, "package_amount"))
        if self.round not in ("up", "down"):
            raise RatingError("round must be 'up' or 'down'")

    def packages(self, quantity: Decimal) -> int:
        """How many packages ``quantity`` units make."""
        with _exact():
            whole, part = divmod(quantity, self.package_size)
        return int(whole) + (1 if part and self.round == "up" else 0)


@dataclass(frozen=True, slots=True)
class Graduated:
    """Each tier prices the units inside it, plus its flat fee when any unit falls inside."""

    tiers: tuple[PriceTier, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", _check_tiers(self.tiers))


@dataclass(frozen=True, slots=True)
class Volume:
    """Every unit at the tier the whole quantity falls in, plus that tier's flat fee.

    The total is not monotonic: crossing into a cheaper tier can lower it (100 units at 10 =
    1,000; 101 at 8 = 808). Within one tier it never decreases. Zero units cost nothing.
    """

    tiers: tuple[PriceTier, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", _check_tiers(self.tiers))


@dataclass(frozen=True, slots=True)
class Percentage:
    """``rate`` (a fraction: ``Decimal("0.025")`` is 2.5 %) of the aggregated quantity, which
    must be an amount in the price's minor units (a sum meter of a transaction-amount property
    in that currency). Per-event minimums and maximums are not supported."""

    rate: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _amount(self.rate, "rate", places=None))


PriceModel = PerUnit | Package | Graduated | Volume | Percentage


@dataclass(frozen=True, slots=True)
class Price:
    """A price model in a currency, with a free allowance per period (units taken off the
    aggregated quantity before the model applies) and the rounding mode of the total."""

    model: PriceModel
    currency: str
    free_units: Decimal = Decimal(0)
    rounding: str = DEFAULT_ROUNDING

    def __post_init__(self) -> None:
        if not isinstance(self.model, PerUnit | Package | Graduated | Volume | Percentage):
            raise RatingError(f"unknown price model {type(self.model).__name__}")
        object.__setattr__(self, "currency", normalize_currency(self.currency))
        object.__setattr__(self, "free_units", _amount(self.free_units, "free_units", places=None))
        try:
            apply_rate(0, 0, rounding=self.rounding)  # money refuses an unknown mode
        except MoneyError as exc:
            raise RatingError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class RatingLine:
    """One priced line: ``quantity * unit_amount`` + ``flat_amount`` = ``exact_amount``
    (minor units, unrounded); ``amount`` is this line's share of the rounded total.

    ``quantity`` is units (packages for a package price, the base amount for a percentage,
    whose ``unit_amount`` is then the rate). ``tier`` (1-based) and ``up_to`` name the tier of
    a graduated or volume price, and are None otherwise.
    """

    quantity: Decimal
    unit_amount: Decimal
    flat_amount: Decimal
    exact_amount: Decimal
    amount: int
    tier: int | None = None
    up_to: int | None = None


@dataclass(frozen=True, slots=True)
class Rating:
    """The charge for one aggregated quantity: ``quantity`` used, ``free_quantity`` of it
    covered by the allowance, ``billable_quantity`` priced, ``amount`` in ``currency``'s minor
    units (rounded once), and the lines (those with a priced quantity), which add up to it."""

    quantity: Decimal
    free_quantity: Decimal
    billable_quantity: Decimal
    exact_amount: Decimal
    amount: int
    currency: str
    lines: tuple[RatingLine, ...]

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)


# A line before rounding: (quantity, unit_amount, flat_amount, tier, up_to).
_Draft = tuple[Decimal, Decimal, Decimal, int | None, int | None]


def _drafts(model: PriceModel, quantity: Decimal) -> list[_Draft]:
    """The unrounded lines of ``model`` for ``quantity`` billable units (exact context)."""
    zero = Decimal(0)
    if quantity == 0:
        return []
    if isinstance(model, PerUnit):
        return [(quantity, model.unit_amount, zero, None, None)]
    if isinstance(model, Percentage):
        return [(quantity, model.rate, zero, None, None)]
    if isinstance(model, Package):
        packages = model.packages(quantity)
        return [(Decimal(packages), model.package_amount, zero, None, None)] if packages else []
    if isinstance(model, Volume):
        for number, tier in enumerate(model.tiers, start=1):
            if tier.up_to is None or quantity <= tier.up_to:
                return [(quantity, tier.unit_amount, tier.flat_amount, number, tier.up_to)]
        raise RatingError("quantity exceeds the last tier")  # pragma: no cover (open-ended)
    drafts: list[_Draft] = []
    lower = zero
    for number, tier in enumerate(model.tiers, start=1):
        if quantity <= lower:
            break
        upper = quantity if tier.up_to is None else min(quantity, Decimal(tier.up_to))
        drafts.append((upper - lower, tier.unit_amount, tier.flat_amount, number, tier.up_to))
        lower = upper
    return drafts


def rate(price: Price, quantity: Decimal | int) -> Rating:
    """Price an aggregated ``quantity`` (≥ 0): allowance first, then the model, rounded once.

    Raises RatingError for a negative or non-finite quantity, TypeError for a float.
    """
    if isinstance(quantity, float):
        raise TypeError("quantity must be a Decimal or int, not float")
    used = to_decimal(quantity, "quantity")
    if used < 0:
        raise RatingError(f"quantity must not be negative, not {quantity}")
    with _exact():
        free = min(used, price.free_units)
        billable = used - free
        drafts = _drafts(price.model, billable)
        exacts = [units * unit + flat for units, unit, flat, _, _ in drafts]
        exact_total = sum(exacts, Decimal(0))
    amount = _round(exact_total, price.rounding)
    # Lines share the rounded total in proportion to their exact amounts (largest remainder),
    # so they add up to it; when it rounds to 0 every line is 0.
    shares = allocate(amount, exacts) if amount else [0] * len(exacts)
    lines = tuple(
        RatingLine(units, unit, flat, exact, share, tier, up_to)
        for (units, unit, flat, tier, up_to), exact, share in zip(
            drafts, exacts, shares, strict=True
        )
    )
    return Rating(used, free, billable, exact_total, amount, price.currency, lines)
