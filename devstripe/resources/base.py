"""Events and export: what every other resource module builds on.

- ``emit`` queues an event for in-order, signed delivery (``webhooks.py``); events are rendered
  at the one API version the fake speaks (:data:`API_VERSION`), which is also what every
  webhook endpoint gets;
- lenient ``expand`` (dj-stripe asks for ``discounts``, ``lines.data.discounts``,
  ``tiers``, ``currency_options``...), and per-class fix-ups of the exported JSON
  (``_devstripe_fixup``) so objects look as Stripe renders them;
- the time objects live on: real time, or a test clock's frozen time while a request works on
  a customer attached to one (``customer_time``; ``test_clocks.py``). localstripe reads the
  time through its module's ``time`` name, which is replaced here by :data:`clock_time`, so
  ``created``, invoice dates and event times follow the clock too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from localstripe import resources as ls
from localstripe.errors import UserError
from localstripe.resources import (
    Event,
    StripeObject,
    store,
)

from .. import webhooks

# The API version the fake speaks: what the pinned stripe-python requests (``stripe.api_version``,
# which dj-stripe registers its endpoints at). Objects and events are rendered in its shapes.
API_VERSION = "2026-08-26.dahlia"
ACCOUNT_ID = "acct_1DevStripeRevenue0"
# Store keys of test clocks (``test_clocks.py``) start with this.
TEST_CLOCK_KEY = "test_helpers.test_clock:"


# --- time: real, or a test clock's frozen time ---------------------------------------------
_frozen: list[int] = []


def now() -> int:
    """The current time in seconds: the innermost frozen time (``frozen_at``) or real time."""
    return _frozen[-1] if _frozen else int(time.time())


class _ClockTime:
    """Stands in for the ``time`` module inside localstripe.resources."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def time(self) -> float:
        # A frozen time is whole seconds; localstripe only does arithmetic and int() on it.
        return _frozen[-1] if _frozen else time.time()


clock_time = _ClockTime()


@contextmanager
def frozen_at(timestamp: int | None) -> Iterator[None]:
    """Run the block at ``timestamp`` (None: leave the time as it is)."""
    if timestamp is None:
        yield
        return
    _frozen.append(int(timestamp))
    try:
        yield
    finally:
        _frozen.pop()


def clock_of(customer_id: str | None) -> Any:
    """The test clock the customer is attached to, or None."""
    customer = store.get("customer:" + customer_id) if customer_id else None
    clock_id = getattr(customer, "test_clock", None)
    return store.get(TEST_CLOCK_KEY + clock_id) if clock_id else None


@contextmanager
def customer_time(customer_id: str | None) -> Iterator[None]:
    """Run the block on the customer's test clock time (real time without a clock)."""
    clock = clock_of(customer_id)
    with frozen_at(clock.frozen_time if clock is not None else None):
        yield


# --- events -------------------------------------------------------------------------------

_orig_event_init: Any = None  # the original, captured by install()


def _event_init(self: Event, type: str, data: StripeObject) -> None:
    _orig_event_init(self, type, data)
    self.api_version = API_VERSION
    # Stripe names the API request behind an event; the fake keeps no request ids.
    self.request = {"id": None, "idempotency_key": None}
    self.pending_webhooks = sum(
        1
        for endpoint in webhooks.endpoints.values()
        if endpoint.events is None or "*" in endpoint.events or type in endpoint.events
    )


def emit(event_type: str, obj: StripeObject, previous: dict[str, Any] | None = None) -> None:
    event = Event(event_type, obj)
    if previous:
        event.data["previous_attributes"] = previous
    webhooks.schedule(event)


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in before.items() if after.get(k) != v}


# --- export: lenient expand and per-class fix-ups -----------------------------------------
_orig_export: Any = None  # the original, captured by install()


def _find(key: str, object_id: str) -> StripeObject | None:
    obj = store.get(f"{key}:{object_id}")
    if obj is not None:
        return obj
    for store_key, value in store.items():
        if store_key.split(":", 1)[-1] == object_id:
            return value
    return None


# (object type, field) -> what Stripe sends for an includable field (one it leaves out of an
# object unless it is expanded, e.g. ``invoice.payments``), built from the exported object.
includable: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {}


def _expand(obj: Any, parts: list[str]) -> None:
    if isinstance(obj, list):
        for item in obj:
            _expand(item, parts)
        return
    if not isinstance(obj, dict) or not parts:
        return
    key, rest = parts[0], parts[1:]
    build = includable.get((str(obj.get("object")), key))
    if build is not None and key not in obj:
        obj[key] = build(obj)
    value = obj.get(key)
    if isinstance(value, str) and value:
        found = _find(key, value)
        if found is not None:
            value = obj[key] = found._export()
    elif isinstance(value, list):
        # A list of ids (a subscription's ``discounts``): each one expands.
        for i, item in enumerate(value):
            found = _find(key, item) if isinstance(item, str) and item else None
            if found is not None:
                value[i] = found._export()
    if rest and value is not None:
        _expand(value, rest)


def _export(self: StripeObject, expand: Any = None) -> dict[str, Any]:
    if expand is None:
        expand = []
    if not isinstance(expand, list) or not all(isinstance(e, str) for e in expand):
        raise UserError(400, "Bad request")
    if any(len(path.split(".")) > 4 for path in expand):
        raise UserError(400, "You cannot expand more than 4 levels of a property")
    obj = _orig_export(self)
    fixup = getattr(type(self), "_devstripe_fixup", None)
    if fixup is not None:
        fixup(self, obj)
    # Stripe ignores nothing, but dj-stripe asks for expansions of fields that may be
    # absent here (discounts on an invoice without any): leave those as they are.
    for path in expand:
        _expand(obj, path.split("."))
    return obj


def _require(condition: object) -> None:
    """localstripe's validation idiom (callers turn AssertionError into a 400), minus `assert`."""
    if not condition:
        raise AssertionError


def _id_of(value: Any) -> Any:
    return value["id"] if isinstance(value, dict) and "id" in value else value


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global _orig_event_init, _orig_export
    ls.time = clock_time
    ls.schedule_webhook = webhooks.schedule  # resources.py looks the name up at call time
    _orig_event_init = Event.__init__
    Event.__init__ = _event_init
    _orig_export = StripeObject._export
    StripeObject._export = _export
