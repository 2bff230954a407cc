"""API billing writes: API keys (create, revoke, last use) and usage ingestion.

Ingestion validates the whole batch before anything is stored (any invalid event refuses the
batch, naming each error by index) and then stores it through `usage_store`, where duplicates
(same customer and event id, in this batch, an earlier one or a concurrent one) are counted and
never stored twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.dateparse import parse_datetime

from accounts.models import User
from marketplace import period_close, usage_store
from marketplace.models import (
    API_CALLS,
    EVENT_MAX_AGE,
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
    SCOPES,
    ApiKey,
    Meter,
    month_bounds,
)

MAX_EVENTS_PER_BATCH = 1000
MAX_EVENT_AHEAD = timedelta(minutes=5)
LAST_USED_RESOLUTION = timedelta(minutes=1)
_QUANTITY_MAX = Decimal(10) ** (QUANTITY_MAX_DIGITS - QUANTITY_DECIMAL_PLACES)
_PREFIX_CHARS = 16  # 64 random bits: the prefix is unique, so it must not collide
_SECRET_BYTES = 24


# --- meters -------------------------------------------------------------------------------


def meter_api_calls_ensure(*, using: str = "default") -> Meter:
    """The `api_calls` meter (a sum of quantities), which the catalog always has: any
    customer's key may report it, and plans' API-call entitlements will become allowances on
    it. Created by the data migration, and again after a flush."""
    meter, _ = Meter.objects.using(using).get_or_create(
        code=API_CALLS,
        defaults={"name": "API calls", "unit": "call", "aggregation": Meter.Aggregation.SUM},
    )
    return meter


# --- API keys ------------------------------------------------------------------------------


def api_key_hash(key: str) -> str:
    """HMAC-SHA256 of a full key, keyed by a key derived from SECRET_KEY (so a leaked table
    alone does not let anyone check guesses). Rotating SECRET_KEY invalidates every API key."""
    return salted_hmac("marketplace.ApiKey", key, algorithm="sha256").hexdigest()


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    key: str  # the only time the full key exists outside the caller's hands


@transaction.atomic
def api_key_create(
    *,
    user: User,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> NewApiKey:
    """A new key for `user`: `rk_live_`/`rk_test_` (Stripe's mode) + 16 visible characters,
    then the secret. Only its keyed hash is stored. Raises ValueError for an unknown scope."""
    chosen = list(dict.fromkeys(scopes)) if scopes else list(SCOPES)
    unknown = sorted(set(chosen) - set(SCOPES))
    if unknown:
        raise ValueError(f"Unknown scopes: {', '.join(unknown)}")
    mode = "live" if settings.STRIPE_LIVE_MODE else "test"
    prefix = f"rk_{mode}_{secrets.token_hex(_PREFIX_CHARS // 2)}"
    key = f"{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    api_key = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        secret_hash=api_key_hash(key),
        scopes=chosen,
        expires_at=expires_at,
    )
    return NewApiKey(api_key=api_key, key=key)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke at once: authentication reads the key's row on every request, so every process
    refuses it from the next request on. Revoking twice keeps the first time."""
    now = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


def api_key_touch(*, api_key: ApiKey, at: datetime) -> None:
    """Record a use, at most once a minute per key (one conditional UPDATE, across
    processes), so busy keys do not write their row on every request."""
    if api_key.last_used_at is not None and at - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    stale = at - LAST_USED_RESOLUTION
    updated = (
        ApiKey.objects.filter(pk=api_key.pk).exclude(last_used_at__gt=stale).update(last_used_at=at)
    )
    if updated:
        api_key.last_used_at = at


# --- usage ingestion -----------------------------------------------------------------------


class UsageBatchInvalid(Exception):
    """The batch was refused; `fields` maps `events[i].field` to messages."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("Invalid usage events.")
        self.fields = fields


class UsageBatchTooLarge(Exception):
    pass


def _exact_number(value: Any, label: str) -> tuple[Decimal | None, str | None]:
    """A JSON number (int, or Decimal when parsed with parse_float=Decimal) as an exact
    Decimal ≥ 0 with at most six decimal places, or an error message."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        return None, f"{label} must be a number."
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        return None, f"{label} must be a finite number."
    if number < 0:
        return None, f"{label} must be zero or more."
    if number >= _QUANTITY_MAX:
        return None, f"{label} must be less than {_QUANTITY_MAX:,}."
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -QUANTITY_DECIMAL_PLACES:
        return None, f"{label} has more than {QUANTITY_DECIMAL_PLACES} decimal places."
    return number.quantize(Decimal(1).scaleb(-QUANTITY_DECIMAL_PLACES)), None


def _timestamp(value: Any, now: datetime) -> tuple[datetime | None, str | None]:
    if not isinstance(value, str):
        return None, "An ISO 8601 date and time, e.g. 2026-01-31T12:00:00Z."
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        return None, "An ISO 8601 date and time, e.g. 2026-01-31T12:00:00Z."
    if timezone.is_naive(parsed):
        return None, "Give a UTC offset or Z."
    if parsed < now - EVENT_MAX_AGE:
        return None, f"More than {EVENT_MAX_AGE.days} days ago."
    if parsed > now + MAX_EVENT_AHEAD:
        return None, "More than 5 minutes ahead."
    return parsed, None


# A fraction is stored as a JSON number (a binary float): exact only up to this many digits.
_PROPERTY_DIGITS = 15


class _InexactNumber(ValueError):
    pass


def _json_plain(value: Any) -> Any:
    """JSON as parsed with exact Decimals, back to plain JSON types for storage. A fraction
    goes through float, which keeps up to 15 significant digits exactly (IEEE 754 double);
    one with more digits would be stored as another number, so it raises _InexactNumber."""
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        if not value.is_finite() or len(value.normalize().as_tuple().digits) > _PROPERTY_DIGITS:
            raise _InexactNumber
        return float(value)
    if isinstance(value, dict):
        return {key: _json_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_plain(item) for item in value]
    return value


def _event_parse(
    raw: Any, meters: dict[str, Meter], now: datetime, errors: dict[str, list[str]], at: str
) -> usage_store.NewEvent | None:
    if not isinstance(raw, dict):
        errors[at] = ["An event is an object."]
        return None
    before = len(errors)

    def fail(field: str, message: str) -> None:
        errors.setdefault(f"{at}.{field}", []).append(message)

    event_id = raw.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        fail("id", "Required: a non-empty string, unique per event (your idempotency key).")
    elif len(event_id) > 255:
        fail("id", "At most 255 characters.")
    metric = raw.get("metric")
    meter = meters.get(metric) if isinstance(metric, str) else None
    if meter is None:
        fail("metric", "Unknown metric." if metric is not None else "Required.")
    quantity, message = _exact_number(raw.get("quantity"), "quantity")
    if "quantity" not in raw:
        fail("quantity", "Required.")
    elif message:
        fail("quantity", message)
    timestamp, message = (
        _timestamp(raw["timestamp"], now) if "timestamp" in raw else (None, "Required.")
    )
    if message:
        fail("timestamp", message)
    properties = raw.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        fail("properties", "An object.")
        properties = {}
    if meter is None or quantity is None:
        return None
    try:
        plain = _json_plain(properties)  # what is stored; the aggregated value stays exact
    except _InexactNumber:
        fail(
            "properties", f"Numbers with a fraction: at most {_PROPERTY_DIGITS} significant digits."
        )
        return None
    counted = all(plain.get(key) == value for key, value in meter.filters.items())
    value_micros, distinct_value = 0, None
    if counted and meter.property and meter.aggregation != Meter.Aggregation.COUNT:
        if meter.property not in properties:
            fail(f"properties.{meter.property}", f"Required by the metric {meter.code}.")
        elif meter.aggregation == Meter.Aggregation.UNIQUE_COUNT:
            distinct_value = plain[meter.property]
        else:
            number, message = _exact_number(
                properties[meter.property], f"properties.{meter.property}"
            )
            if message:
                fail(f"properties.{meter.property}", message)
            else:
                value_micros = usage_store.to_micros(number or 0)
    elif counted and meter.aggregation != Meter.Aggregation.COUNT:
        value_micros = usage_store.to_micros(quantity)
    if len(errors) > before or timestamp is None:
        return None
    assert isinstance(event_id, str)  # noqa: S101 (checked above; narrows for the type checker)
    return usage_store.NewEvent(
        event_id=event_id,
        meter=meter,
        quantity=quantity,
        timestamp=timestamp,
        properties=plain,
        counted=counted,
        value_micros=value_micros,
        distinct_value=distinct_value,
    )


def usage_batch_parse(*, payload: Any) -> list[usage_store.NewEvent]:
    """Validate a whole batch (`{"events": [...]}`, already parsed from JSON). Raises
    UsageBatchTooLarge past MAX_EVENTS_PER_BATCH events and UsageBatchInvalid naming every
    invalid event by index; nothing is stored."""
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise UsageBatchInvalid({"events": ["Required: a list of events."]})
    raw_events = payload["events"]
    if len(raw_events) > MAX_EVENTS_PER_BATCH:
        raise UsageBatchTooLarge(f"At most {MAX_EVENTS_PER_BATCH} events per request.")
    if not raw_events:
        raise UsageBatchInvalid({"events": ["At least one event."]})
    meters = {meter.code: meter for meter in Meter.objects.filter(is_active=True)}
    now = timezone.now()
    errors: dict[str, list[str]] = {}
    parsed = [
        _event_parse(raw, meters, now, errors, f"events[{index}]")
        for index, raw in enumerate(raw_events)
    ]
    if errors:
        raise UsageBatchInvalid(errors)
    return [event for event in parsed if event is not None]


def usage_events_record(
    *, customer: User, events: list[usage_store.NewEvent]
) -> usage_store.StoreResult:
    """Store a validated batch for `customer`. Repeated ids within the batch count as
    duplicates (the first one is kept), as do ids already stored.

    Events stamped inside a period that is already closed (rated and billed) are refused with
    the batch (UsageBatchInvalid naming them), unless they are duplicates of stored events (a
    client retrying a batch sent before the close gets its 202)."""
    unique: dict[str, usage_store.NewEvent] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    periods = {month_bounds(event.timestamp)[0] for event in unique.values()}
    with transaction.atomic():
        # Locks those periods' closes (if any) so none can rate them while this batch lands.
        closed = period_close.usage_periods_closed(customer_id=customer.pk, period_starts=periods)
        if closed:
            _refuse_closed(customer=customer, events=events, closed=closed)
        stored = usage_store.events_store(customer_id=customer.pk, events=list(unique.values()))
    return usage_store.StoreResult(
        accepted=stored.accepted, duplicates=stored.duplicates + len(events) - len(unique)
    )


def _refuse_closed(
    *, customer: User, events: list[usage_store.NewEvent], closed: set[datetime]
) -> None:
    late = {
        index: event
        for index, event in enumerate(events)
        if month_bounds(event.timestamp)[0] in closed
    }
    stored = usage_store.event_ids_stored(
        customer_id=customer.pk, event_ids={event.event_id for event in late.values()}
    )
    errors = {
        f"events[{index}].timestamp": [
            f"The period {month_bounds(event.timestamp)[0]:%Y-%m} is closed and invoiced; "
            "usage stamped inside it can no longer be added."
        ]
        for index, event in late.items()
        if event.event_id not in stored
    }
    if errors:
        raise UsageBatchInvalid(errors)
