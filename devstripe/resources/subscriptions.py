"""Subscriptions and their items.

- multi-item subscriptions created from ``items=[{"price": ..., "quantity": n}]`` and
  updated item by item, ``cancel_at_period_end``, cancel with ``canceled_at``;
- correct tiered amounts (``devstripe.pricing``);
- ``subscription``/``price`` on subscription items, ``[]`` instead of ``null`` for
  ``default_tax_rates``; ``GET /v1/subscription_items?subscription=<id>``;
- ``customer.subscription.updated`` whenever localstripe changes a status silently, and
  payment failures at subscription creation reported as ``invoice.payment_failed``;
- the current period is stored on the subscription (``_period_start``/``_period_end``), so
  renewals (``test_clocks.py``) can move it; during a trial it is the trial, as in Stripe.
  Stripe renders it on each item (``items.data[].current_period_start``/``end``), not on the
  subscription; localstripe's ``current_period_*``/``plan``/``quantity`` properties stay for
  the fake's own code but are not rendered;
- ``payment_behavior=default_incomplete``: the first invoice is finalized with a payment
  intent left unconfirmed, for the customer to confirm (Stripe.js); the subscription is
  ``incomplete`` until it succeeds;
- a coupon applied with ``discounts=[{"coupon": id}]`` is a Discount (``di_``), listed by id
  in ``discounts`` (``expand=["discounts.source.coupon"]`` gives the objects);
- everything runs on the customer's test clock time when it has one (``base.customer_time``).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import Any

from dateutil.relativedelta import relativedelta
from localstripe import resources as ls
from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    Event,
    List,
    PaymentMethod,
    Plan,
    StripeObject,
    Subscription,
    SubscriptionItem,
    TaxRate,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)

from ..pricing import tiered_amount
from .base import _changed, _require, clock_of, customer_time, emit, now
from .catalog import _plan_for_item, _price_for_plan
from .invoices import billing_reason

# --- subscription items -------------------------------------------------------------------
_orig_si_init: Any = None  # the original, captured by install()


def _si_init(
    self: SubscriptionItem,
    subscription: str | None = None,
    plan: str | None = None,
    price: str | None = None,
    quantity: Any = 1,
    tax_rates: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    if price is not None or plan is None:
        plan = _plan_for_item({"price": price, "plan": plan}).id
    _orig_si_init(
        self,
        subscription=subscription,
        plan=plan,
        quantity=1 if quantity is None else quantity,
        tax_rates=tax_rates or [],
        metadata=metadata,
        **kwargs,
    )


def _period_end(start: int, interval: str, count: int) -> int:
    begin = datetime.fromtimestamp(start, tz=UTC)
    step = {
        "day": relativedelta(days=count),
        "week": relativedelta(weeks=count),
        "month": relativedelta(months=count),
        "year": relativedelta(years=count),
    }[interval]
    return calendar.timegm((begin + step).utctimetuple())


def period_start(sub: Subscription, start: int, end: int | None = None) -> None:
    """Start ``sub``'s current period at ``start``: one interval of its plan, or up to ``end``."""
    plan = sub.items._list[0].plan
    sub._period_start = start
    sub._period_end = (
        end if end is not None else _period_end(start, plan.interval, plan.interval_count or 1)
    )


def _si_current_period(self: SubscriptionItem) -> dict[str, int]:
    sub = store.get("subscription:" + self._subscription) if self._subscription else None
    if sub is not None and getattr(sub, "_period_end", None) is not None:
        return {"start": sub._period_start, "end": sub._period_end}
    # Before the subscription has a period (while it is being created), or from an old pickle.
    start = getattr(sub, "start_date", None) or now()
    end = _period_end(start, self.plan.interval, self.plan.interval_count or 1)
    return {"start": start, "end": end}


def item_amount(plan: Plan, quantity: int) -> int:
    """What ``quantity`` of ``plan`` costs for one whole period."""
    if plan.usage_type == "metered":
        return 0  # billed in arrears from usage; devstripe records no usage
    if plan.billing_scheme == "tiered":
        return tiered_amount(plan.tiers, plan.tiers_mode, quantity)
    return plan.amount * quantity


def _si_amount(self: SubscriptionItem) -> int:
    return item_amount(self.plan, self.quantity)


def _si_fixup(self: SubscriptionItem, obj: dict[str, Any]) -> None:
    price = _price_for_plan(self.plan)
    obj["price"] = price._export() if price is not None else None
    obj["subscription"] = self._subscription
    obj["discounts"] = []
    obj["billing_thresholds"] = None
    period = self._current_period()
    obj["current_period_start"] = period["start"]
    obj["current_period_end"] = period["end"]
    # Not fields of a subscription item.
    obj.pop("livemode", None)
    obj.pop("invoice", None)
    if self.plan.usage_type == "metered":
        obj.pop("quantity", None)


def _si_list(
    cls: type[SubscriptionItem],
    url: str,
    subscription: str | None = None,
    limit: Any = None,
    starting_after: str | None = None,
    **kwargs: Any,
) -> List:
    """``GET /v1/subscription_items?subscription=<id>``: the subscription's items, in order."""
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
    if not isinstance(subscription, str) or not subscription:
        raise UserError(400, "Missing required param: subscription.", {"param": "subscription"})
    sub = Subscription._api_retrieve(subscription)
    li = List(url, limit=limit, starting_after=starting_after)
    li._list = list(sub.items._list)
    return li


# --- subscriptions ------------------------------------------------------------------------
def _validate_items(items: Any, *, updating: bool) -> None:
    _require(isinstance(items, list))
    for item in items:
        _require(isinstance(item, dict))
        if item.get("quantity") is not None:
            item["quantity"] = try_convert_to_int(item["quantity"])
            _require(isinstance(item["quantity"], int) and item["quantity"] > 0)
        item["tax_rates"] = item.get("tax_rates") or []
        _require(isinstance(item["tax_rates"], list))
        _require(item.get("metadata") is None or isinstance(item["metadata"], dict))
        if updating:
            item["deleted"] = try_convert_to_bool(item.get("deleted", False))
            _require(item.get("id") is None or isinstance(item["id"], str))


def _subscription_init(
    self: Subscription,
    customer: str | None = None,
    items: Any = None,
    metadata: dict[str, Any] | None = None,
    default_payment_method: str | None = None,
    default_tax_rates: list[str] | None = None,
    payment_behavior: str = "allow_incomplete",
    trial_period_days: Any = None,
    trial_end: Any = None,
    cancel_at_period_end: Any = None,
    collection_method: str | None = None,
    proration_behavior: str | None = None,
    off_session: Any = None,
    description: str | None = None,
    discounts: Any = None,
    **kwargs: Any,
) -> None:
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    trial_period_days = try_convert_to_int(trial_period_days)
    trial_end = now() if trial_end == "now" else try_convert_to_int(trial_end)
    cancel_at_period_end = try_convert_to_bool(cancel_at_period_end)
    try:
        _require(isinstance(customer, str) and customer.startswith("cus_"))
        _validate_items(items, updating=False)
        _require(items)
        _require(
            payment_behavior in ("allow_incomplete", "default_incomplete", "error_if_incomplete")
        )
        _require(trial_period_days is None or isinstance(trial_period_days, int))
        _require(trial_end is None or isinstance(trial_end, int))
        _require(cancel_at_period_end is None or isinstance(cancel_at_period_end, bool))
        _require(collection_method in (None, "charge_automatically"))
        _require(default_tax_rates is None or isinstance(default_tax_rates, list))
    except AssertionError:
        raise UserError(400, "Bad request") from None

    Customer._api_retrieve(customer)
    plans = [_plan_for_item(item) for item in items]
    if len({(p.currency, p.interval, p.interval_count) for p in plans}) > 1:
        raise UserError(400, "All items of a subscription need one currency and one interval")
    if default_payment_method is not None:
        PaymentMethod._api_retrieve(default_payment_method)
    tax_rates = [TaxRate._api_retrieve(tr) for tr in default_tax_rates or []]
    coupon = _coupon_for(discounts)

    # All exceptions must be raised before this point.
    StripeObject.__init__(self)

    started = now()
    self.customer = customer
    self.metadata = metadata or {}
    self.description = description
    self.tax_percent = None
    self.default_tax_rates = tax_rates
    self.default_payment_method = default_payment_method
    self.application_fee_percent = None
    self.cancel_at_period_end = bool(cancel_at_period_end)
    self.cancel_at = None
    self.canceled_at = None
    self.collection_method = "charge_automatically"
    self.discount = None
    self.ended_at = None
    self.status = "incomplete"
    self.trial_from_plan = False
    self.trial_period_days = trial_period_days
    self.trial_start = None
    self.trial_end = None
    self.latest_invoice = None
    self.start_date = started
    self.billing_cycle_anchor = started
    self._period_start = self._period_end = None
    self._enable_incomplete_payments = payment_behavior != "error_if_incomplete"
    # Stripe: "create Subscriptions with status=incomplete when the first invoice requires
    # payment" and leave its PaymentIntent for the customer to confirm (invoices.py).
    self._default_incomplete = payment_behavior == "default_incomplete"

    self.discount = _discount(self, coupon)
    self.items = List("/v1/subscription_items?subscription=" + self.id)
    for item, plan in zip(items, plans, strict=True):
        self.items._list.append(
            SubscriptionItem(
                subscription=self.id,
                plan=plan.id,
                quantity=item.get("quantity") or 1,
                metadata=item.get("metadata"),
                tax_rates=item["tax_rates"],
            )
        )
    if trial_period_days or trial_end:
        self.status = "trialing"
        self.trial_start = started
        self.trial_end = trial_end or started + trial_period_days * 86400
        period_start(self, started, end=self.trial_end)
    else:
        period_start(self, started)
    if self.cancel_at_period_end:
        self.cancel_at = self.current_period_end
    if self.status != "trialing":
        self._create_invoice()

    emit("customer.subscription.created", self)


def _subscription_update(
    self: Subscription,
    items: Any = None,
    metadata: dict[str, Any] | None = None,
    cancel_at_period_end: Any = None,
    default_payment_method: str | None = None,
    proration_behavior: str | None = None,
    payment_behavior: str | None = None,
    description: str | None = None,
    trial_end: Any = None,
    discounts: Any = None,
    **kwargs: Any,
) -> None:
    """Change items, quantities, metadata, ``cancel_at_period_end``, ``trial_end`` or
    ``discounts``.

    Prorations are created around this (``prorations.py``); here a changed item is billed
    at its new price from the next period. A discount is recorded on the subscription
    (``discount``, for MRR) but never applied to invoices.
    """
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    if self.status == "canceled":
        raise UserError(400, "A canceled subscription can only update its metadata.")
    cancel_at_period_end = try_convert_to_bool(cancel_at_period_end)
    trial_end = now() if trial_end == "now" else try_convert_to_int(trial_end)
    try:
        _require(trial_end is None or isinstance(trial_end, int))
        _require(cancel_at_period_end is None or isinstance(cancel_at_period_end, bool))
        _require(metadata is None or isinstance(metadata, dict))
        _require(proration_behavior in (None, "create_prorations", "none", "always_invoice"))
        if items is not None:
            _validate_items(items, updating=True)
    except AssertionError:
        raise UserError(400, "Bad request") from None

    # Check everything before changing anything.
    current = {si.id: si for si in self.items._list}
    changes = []
    for item in items or []:
        si = current.get(item.get("id")) if item.get("id") else None
        if item.get("id") and si is None:
            raise UserError(404, f"No such subscription item: '{item['id']}'")
        has_price = item.get("price") or item.get("plan")
        plan = _plan_for_item(item) if has_price else None
        changes.append((item, si, plan))
    remaining = len(current) - sum(1 for item, si, _ in changes if si and item["deleted"])
    remaining += sum(1 for _, si, _ in changes if si is None)
    if remaining < 1:
        raise UserError(400, "A subscription needs at least one item")
    if default_payment_method is not None:
        PaymentMethod._api_retrieve(default_payment_method)
    coupon = _coupon_for(discounts)

    before = self._export()
    for item, si, plan in changes:
        if si is not None and item["deleted"]:
            self.items._list.remove(si)
        elif si is not None:
            if plan is not None:
                si.plan = plan
            if item.get("quantity") is not None:
                si.quantity = item["quantity"]
            if item.get("metadata"):
                si.metadata.update(item["metadata"])
        else:
            self.items._list.append(
                SubscriptionItem(
                    subscription=self.id,
                    plan=plan.id if plan else None,
                    quantity=item.get("quantity") or 1,
                    metadata=item.get("metadata"),
                    tax_rates=item["tax_rates"],
                )
            )
    if metadata:
        for key, value in metadata.items():
            if value in ("", None):
                self.metadata.pop(key, None)
            else:
                self.metadata[key] = value
    if cancel_at_period_end is not None:
        self.cancel_at_period_end = cancel_at_period_end
        self.cancel_at = self.current_period_end if cancel_at_period_end else None
        self.canceled_at = now() if cancel_at_period_end else None
    if default_payment_method is not None:
        self.default_payment_method = default_payment_method or None
    if description is not None:
        self.description = description
    if trial_end is not None:
        moment = now()
        self.trial_start = self.trial_start or moment
        self.trial_end = trial_end
        if trial_end > moment and self.status in ("active", "trialing"):
            self.status = "trialing"
            period_start(self, self._period_start or moment, end=trial_end)
        elif trial_end <= moment and self.status == "trialing":
            # Ending a trial starts a period and invoices it now, as Stripe does; a declined
            # payment leaves the subscription past_due with the invoice open.
            self.status = "active"
            self.billing_cycle_anchor = moment
            period_start(self, moment)
            with billing_reason("subscription_update"):
                self._create_invoice()
    if discounts is not None:
        self.discount = _discount(self, coupon)
    emit("customer.subscription.updated", self, _changed(before, self._export()))


def _coupon_for(discounts: Any) -> Any:
    """The coupon of ``discounts=[{"coupon": id}]`` (404 if unknown), None for no discount."""
    if discounts is None or discounts == "" or discounts == []:
        return None
    try:
        _require(isinstance(discounts, list) and len(discounts) == 1)
        _require(isinstance(discounts[0], dict) and isinstance(discounts[0].get("coupon"), str))
    except AssertionError:
        raise UserError(400, "Bad request") from None
    return ls.Coupon._api_retrieve(discounts[0]["coupon"])


class Discount(StripeObject):
    """A coupon applied to a subscription (Stripe's ``discount``; not retrievable on its own)."""

    object = "discount"
    _id_prefix = "di_"

    def __init__(self, coupon: Any, customer: str, subscription: str) -> None:
        super().__init__()
        start = now()
        end = None
        if coupon.duration == "repeating":
            begin = datetime.fromtimestamp(start, tz=UTC)
            end = calendar.timegm(
                (begin + relativedelta(months=coupon.duration_in_months)).utctimetuple()
            )
        self.source = {"type": "coupon", "coupon": coupon.id}
        self.customer = customer
        self.subscription = subscription
        self.start = start
        self.end = end
        self.checkout_session = None
        self.customer_account = None
        self.invoice = None
        self.invoice_item = None
        self.promotion_code = None
        self.subscription_item = None

    def _devstripe_fixup(self, obj: dict[str, Any]) -> None:
        # Not fields of a discount.
        obj.pop("created", None)
        obj.pop("livemode", None)


def _discount(sub: Subscription, coupon: Any) -> Discount | None:
    """A discount of ``coupon`` on ``sub``, starting now."""
    if coupon is None:
        return None
    return Discount(coupon, customer=sub.customer, subscription=sub.id)


def _subscription_delete(cls: type[Subscription], id: str, **kwargs: Any) -> Subscription:
    obj = cls._api_retrieve(id)
    if obj.status == "canceled":
        raise UserError(400, f"The subscription {id} is already canceled.")
    ended = now()
    obj.status = "canceled"
    obj.canceled_at = obj.canceled_at or ended
    obj.ended_at = ended
    emit("customer.subscription.deleted", obj)
    return obj


# localstripe's (and older API versions') fields that Stripe no longer renders on a subscription:
# the period lives on each item, the discount in ``discounts``.
_REMOVED_SUBSCRIPTION_FIELDS = (
    "current_period_start",
    "current_period_end",
    "discount",
    "plan",
    "quantity",
    "tax_percent",
    "trial_from_plan",
    "trial_period_days",
)


def _subscription_fixup(self: Subscription, obj: dict[str, Any]) -> None:
    for removed in _REMOVED_SUBSCRIPTION_FIELDS:
        obj.pop(removed, None)
    discount = getattr(self, "discount", None)
    obj["discounts"] = [discount.id] if isinstance(discount, Discount) else []
    obj["default_tax_rates"] = obj.get("default_tax_rates") or []
    obj.setdefault("default_payment_method", None)
    obj["currency"] = self.items._list[0].plan.currency if self.items._list else None
    obj["test_clock"] = getattr(clock_of(self.customer), "id", None)
    obj["automatic_tax"] = {"enabled": False, "disabled_reason": None, "liability": None}
    # New subscriptions bill in flexible mode by default since 2025-10-29.clover.
    obj["billing_mode"] = {
        "type": "flexible",
        "flexible": {"proration_discounts": "included"},
        "updated_at": None,
    }
    obj["billing_schedules"] = []
    obj["invoice_settings"] = {"account_tax_ids": None, "issuer": {"type": "self"}}
    obj["cancellation_details"] = {
        "comment": None,
        "feedback": None,
        "reason": "cancellation_requested" if self.status == "canceled" else None,
    }
    obj["payment_settings"] = {
        "payment_method_options": None,
        "payment_method_types": None,
        "save_default_payment_method": "off",
    }
    obj["trial_settings"] = {"end_behavior": {"missing_payment_method": "create_invoice"}}
    for key in (
        "billing_cycle_anchor_config", "billing_thresholds", "days_until_due",
        "default_source", "next_pending_invoice_item_invoice", "on_behalf_of",
        "pause_collection", "pending_invoice_item_interval", "pending_setup_intent",
        "pending_update", "schedule", "transfer_data",
    ):  # fmt: skip
        obj.setdefault(key, None)


def _emitting_status_change(method: Any) -> Any:
    """localstripe changes a subscription's status after payments without telling anyone."""

    def wrapper(self: Subscription, *args: Any) -> Any:
        before = self._export()
        try:
            return method(self, *args)
        finally:
            after = self._export()
            # At creation the status is part of customer.subscription.created.
            if before["status"] != after["status"] and _is_announced(self):
                emit("customer.subscription.updated", self, _changed(before, after))

    return wrapper


def _is_announced(sub: Subscription) -> bool:
    return any(
        isinstance(e, Event)
        and getattr(e, "type", None) == "customer.subscription.created"
        and e.data["object"]["id"] == sub.id
        for e in store.values()
    )


for _name in ("_on_initial_payment_success", "_on_recurring_payment_failure"):
    setattr(Subscription, _name, _emitting_status_change(getattr(Subscription, _name)))


def _on_customer_clock(init: Any) -> Any:
    def wrapper(self: Subscription, *args: Any, customer: str | None = None, **kwargs: Any) -> None:
        with customer_time(customer):
            init(self, *args, customer=customer, **kwargs)

    return wrapper


def _on_subscription_clock(method: Any) -> Any:
    def wrapper(self: Subscription, *args: Any, **kwargs: Any) -> Any:
        with customer_time(self.customer):
            return method(self, *args, **kwargs)

    return wrapper


def _delete_on_clock(cls: type[Subscription], id: str, **kwargs: Any) -> Subscription:
    with customer_time(cls._api_retrieve(id).customer):
        return _subscription_delete(cls, id, **kwargs)


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global _orig_si_init
    _orig_si_init = SubscriptionItem.__init__
    SubscriptionItem.__init__ = _si_init
    SubscriptionItem._current_period = _si_current_period
    SubscriptionItem._calculate_amount = _si_amount
    SubscriptionItem._devstripe_fixup = _si_fixup
    SubscriptionItem._api_list_all = classmethod(_si_list)
    Subscription.__init__ = _on_customer_clock(_subscription_init)
    Subscription._update = _on_subscription_clock(_subscription_update)
    Subscription._api_delete = classmethod(_delete_on_clock)
    Subscription._devstripe_fixup = _subscription_fixup
