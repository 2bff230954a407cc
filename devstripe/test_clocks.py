"""Stripe test clocks: renewals, trial ends and cancellations at period end, on demand.

Stripe's API (``stripe.test_helpers.TestClock`` in the python client):

- ``POST /v1/test_helpers/test_clocks`` {``frozen_time``, ``name``?};
  ``GET /v1/test_helpers/test_clocks[/<id>]``; ``DELETE /v1/test_helpers/test_clocks/<id>``;
- ``POST /v1/test_helpers/test_clocks/<id>/advance`` {``frozen_time``, later than now};
- ``POST /v1/customers`` {``test_clock``: <id>} attaches a customer to a clock.

Objects of such a customer live on the clock's time: the customer, its subscriptions, their
items' periods, invoices, payments and events get ``created``/``start_date``/``paid_at``...
from the frozen time, in the requests that create or change them (``base.customer_time``).

Advancing walks every subscription of the clock's customers through the period boundaries up
to the new frozen time, all subscriptions together in time order, each step at the boundary's
time:

- a trial end makes the subscription ``active`` with a new period from the trial end and
  invoices it;
- a period end with ``cancel_at_period_end`` cancels the subscription
  (``customer.subscription.deleted``, status ``canceled``, ``ended_at`` the period end);
- any other period end of an ``active`` or ``past_due`` subscription renews it: a new
  ``current_period_start``/``end`` on each of its items, an invoice
  (``billing_reason`` ``subscription_cycle``) for the next period plus the customer's pending
  invoice items (prorations), paid with the default payment method. Events:
  ``invoice.created``, ``customer.subscription.updated`` (the items with their previous
  period and ``latest_invoice`` in ``previous_attributes``), ``invoice.finalized``, then
  ``charge.succeeded``, ``invoice.paid``... or ``charge.failed``, ``invoice.payment_failed``
  (the subscription becomes ``past_due``).

``test_helpers.test_clock.created``/``advancing``/``ready``/``deleted`` are emitted. Unlike
Stripe, advancing finishes within the request (the answer already says ``ready``), there is
no limit on how far a clock may advance, and deleting a clock deletes its customers without
events. Not emulated: payment retries (smart retries, dunning emails), ``cancel_at`` other
than the period end, pending items of one subscription kept off another subscription's
invoice of the same customer, and invoice ``period_start``/``period_end`` (Stripe's are the
previous period's; here the new one's, as on the lines).
"""

from __future__ import annotations

from typing import Any

from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    DeletedObject,
    Invoice,
    List,
    PaymentMethod,
    StripeObject,
    Subscription,
    store,
    try_convert_to_int,
)

from .resources.base import TEST_CLOCK_KEY, _changed, _require, customer_time, emit, frozen_at
from .resources.invoices import billing_reason
from .resources.subscriptions import period_start

BASE_URL = "/v1/test_helpers/test_clocks"
DELETES_AFTER_SECONDS = 30 * 86400


class TestClock(StripeObject):
    object = "test_helpers.test_clock"
    _id_prefix = "clock_"
    __test__ = False  # not a pytest test class

    def __init__(self, frozen_time: Any = None, name: Any = None, **kwargs: Any) -> None:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        frozen_time = try_convert_to_int(frozen_time)
        try:
            _require(isinstance(frozen_time, int) and frozen_time > 0)
            _require(name is None or isinstance(name, str))
        except AssertionError:
            raise UserError(400, "Bad request") from None
        super().__init__()
        self.frozen_time = frozen_time
        self.name = name
        self.status = "ready"
        self.status_details: dict[str, Any] = {}
        self.deletes_after = self.created + DELETES_AFTER_SECONDS
        emit("test_helpers.test_clock.created", self)

    @classmethod
    def _api_retrieve(cls, id: str) -> TestClock:
        obj = store.get(TEST_CLOCK_KEY + id)
        if obj is None:
            raise UserError(404, f"No such test clock: '{id}'")
        return obj


def _create(**data: Any) -> TestClock:
    return TestClock(**data)


def _retrieve(id: str, **kwargs: Any) -> TestClock:
    return TestClock._api_retrieve(id)


def _list(limit: Any = None, starting_after: Any = None, **kwargs: Any) -> List:
    li = List(BASE_URL, limit=limit, starting_after=starting_after)
    li._list = sorted(
        (v for k, v in store.items() if k.startswith(TEST_CLOCK_KEY)),
        key=lambda c: c.created,
        reverse=True,
    )
    return li


def _customers(clock: TestClock) -> list[Customer]:
    return [
        c
        for k, c in list(store.items())
        if k.startswith("customer:") and getattr(c, "test_clock", None) == clock.id
    ]


def _delete(id: str, **kwargs: Any) -> DeletedObject:
    clock = TestClock._api_retrieve(id)
    for customer in _customers(clock):
        del store["customer:" + customer.id]
    del store[TEST_CLOCK_KEY + id]
    emit("test_helpers.test_clock.deleted", clock)
    return DeletedObject(id, TestClock.object)


# --- advancing ----------------------------------------------------------------------------
def _next_boundary(sub: Subscription) -> int | None:
    if sub.status == "trialing":
        return int(sub.trial_end)
    if sub.status in ("active", "past_due"):
        return int(sub.current_period_end)
    return None


def _invoice_period(sub: Subscription, before: dict[str, Any]) -> None:
    """Invoice the period that just started (and pending items); tell who listens; pay."""
    with billing_reason("subscription_cycle"):
        invoice = Invoice(
            customer=sub.customer,
            subscription=sub.id,
            items=list(sub.items._list),
            default_tax_rates=[tr.id for tr in sub.default_tax_rates or []],
            date=sub.current_period_start,
        )
    emit("customer.subscription.updated", sub, _changed(before, sub._export()))
    Invoice._api_pay_invoice(invoice.id)


def _cross(sub: Subscription, boundary: int) -> None:
    """What happens to ``sub`` at ``boundary`` (its trial end or period end)."""
    if sub.cancel_at_period_end:
        Subscription._api_delete(sub.id)
        return
    before = sub._export()
    if sub.status == "trialing":
        sub.status = "active"
        sub.billing_cycle_anchor = boundary
    period_start(sub, boundary)
    _invoice_period(sub, before)


def _advance(id: str, frozen_time: Any = None, **kwargs: Any) -> TestClock:
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    clock = TestClock._api_retrieve(id)
    target = try_convert_to_int(frozen_time)
    if not isinstance(target, int) or target <= clock.frozen_time:
        raise UserError(
            400,
            "The test clock can only be advanced to a time after its current frozen_time.",
            {"param": "frozen_time"},
        )
    with frozen_at(clock.frozen_time):
        clock.status = "advancing"
        emit("test_helpers.test_clock.advancing", clock)
    customers = {c.id for c in _customers(clock)}
    subs = [
        s
        for k, s in store.items()
        if k.startswith("subscription:") and getattr(s, "customer", None) in customers
    ]
    while True:
        due = [(b, i) for i, s in enumerate(subs) if (b := _next_boundary(s)) is not None]
        due = [(b, i) for b, i in due if b <= target]
        if not due:
            break
        boundary, index = min(due)
        clock.frozen_time = boundary  # the customer's objects now live at the boundary
        with customer_time(subs[index].customer):
            _cross(subs[index], boundary)
    clock.frozen_time = target
    clock.status = "ready"
    with frozen_at(target):
        emit("test_helpers.test_clock.ready", clock)
    return clock


# --- customers on a clock -----------------------------------------------------------------
_orig_customer_init: Any = None  # the original, captured by install()
_orig_customer_update: Any = None  # the original, captured by install()
_orig_pm_attach: Any = None  # the original, captured by install()


def _customer_init(self: Customer, test_clock: Any = None, **kwargs: Any) -> None:
    clock = None
    if test_clock is not None:
        if not isinstance(test_clock, str):
            raise UserError(400, "Bad request")
        clock = TestClock._api_retrieve(test_clock)
    self.test_clock = test_clock
    with frozen_at(clock.frozen_time if clock is not None else None):
        _orig_customer_init(self, **kwargs)


def _customer_update(cls: type[Customer], id: str, **data: Any) -> Customer:
    if "test_clock" in data:
        raise UserError(400, "A customer's test clock cannot be changed", {"param": "test_clock"})
    with customer_time(id):
        return _orig_customer_update(id, **data)


def _pm_attach(cls: type[PaymentMethod], id: str, customer: Any = None, **kwargs: Any) -> Any:
    with customer_time(customer if isinstance(customer, str) else None):
        return _orig_pm_attach(id, customer=customer, **kwargs)


extra_routes: list[tuple[str, str, Any]] = [
    ("POST", BASE_URL, _create),
    ("GET", BASE_URL, _list),
    ("GET", BASE_URL + "/{id}", _retrieve),
    ("DELETE", BASE_URL + "/{id}", _delete),
    ("POST", BASE_URL + "/{id}/advance", _advance),
]


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global _orig_customer_init, _orig_customer_update, _orig_pm_attach
    _orig_customer_init = Customer.__init__
    _orig_customer_update = Customer._api_update
    _orig_pm_attach = PaymentMethod._api_attach
    Customer.__init__ = _customer_init
    Customer._api_update = classmethod(_customer_update)
    PaymentMethod._api_attach = classmethod(_pm_attach)
