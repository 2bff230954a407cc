"""What dj-stripe 2.11 needs from localstripe 1.15 and localstripe lacks.

Importing this module patches localstripe's resource classes in place (their routes and
their internal calls go through the class attributes, so patching is the smallest change):

- ``GET /v1/account`` and ``GET /v1/accounts/<id>`` (dj-stripe resolves every object's
  owner account through them);
- a Price resource (per-unit and tiered, recurring or one-time); a recurring price is
  also a Plan with the same id, as in Stripe, so localstripe's subscription code runs on it;
- multi-item subscriptions created from ``items=[{"price": ..., "quantity": n}]`` and
  updated item by item, ``cancel_at_period_end``, cancel with ``canceled_at``;
- correct tiered amounts (``revenue_site.devstripe.pricing``);
- lenient ``expand`` (dj-stripe asks for ``discounts``, ``lines.data.discounts``,
  ``tiers``, ``currency_options``...), ``[]`` instead of ``null`` for ``default_tax_rates``,
  ``subscription``/``price`` on subscription items, ids instead of nested objects where
  Stripe returns ids;
- the events localstripe never emits (``invoice.paid``, ``invoice.finalized``,
  ``charge.succeeded/failed/refunded``, ``customer.subscription.updated``, ...), and
  payment failures at subscription creation reported as ``invoice.payment_failed``;
- the on-disk pickle (shared ``/tmp/localstripe.pickle``) only when a state file is given;
  it also holds the saved idempotent responses (``idempotency.py``);
- disputes: a charge paid with the test card ``pm_card_createDispute`` (number
  4000000000000259) is disputed as fraudulent at once (``charge.dispute.created``), and
  ``GET /v1/disputes[/<id>]`` serve them.
"""

from __future__ import annotations

import calendar
import pickle
import time
from datetime import UTC, datetime
from typing import Any

from dateutil.relativedelta import relativedelta
from localstripe import resources as ls
from localstripe.errors import UserError
from localstripe.resources import (
    Charge,
    Customer,
    Event,
    Invoice,
    InvoiceLineItem,
    List,
    PaymentIntent,
    PaymentMethod,
    Plan,
    Product,
    Refund,
    Store,
    StripeObject,
    Subscription,
    SubscriptionItem,
    TaxRate,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)

from . import idempotency, webhooks
from .pricing import tiered_amount

# The version dj-stripe 2.11 pins; events claim to be rendered with it.
API_VERSION = "2026-05-27.dahlia"
ACCOUNT_ID = "acct_1DevStripeRevenue0"

# --- storage: in memory unless a state file is configured ---------------------------------
STATE_FILE: str | None = None
# The saved idempotent responses travel in the state file under this key (not an object key).
_IDEMPOTENCY_KEY = "_devstripe:idempotency"


def _dump_to_disk(self: Store) -> None:
    if STATE_FILE:
        data = {**self, _IDEMPOTENCY_KEY: dict(idempotency.saved)}
        with open(STATE_FILE, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)


def _load_from_disk(self: Store) -> None:
    if not STATE_FILE:
        return
    try:
        with open(STATE_FILE, "rb") as f:
            data = pickle.load(f)  # noqa: S301 - our own dev-only state file
    except FileNotFoundError:
        return
    idempotency.forget_all()
    idempotency.saved.update(data.pop(_IDEMPOTENCY_KEY, {}))
    dict.clear(self)
    # The store is written on every insert, and localstripe inserts an object before its
    # __init__ has finished; an object caught half-built by the last write is left out.
    dict.update(
        self,
        {
            key: obj
            for key, obj in data.items()
            if not (isinstance(obj, Event) and not hasattr(obj, "type"))
        },
    )


Store.dump_to_disk = _dump_to_disk  # type: ignore[method-assign]
Store.try_load_from_disk = _load_from_disk  # type: ignore[method-assign]


# --- events -------------------------------------------------------------------------------
ls.schedule_webhook = webhooks.schedule  # resources.py looks the name up at call time

_orig_event_init = Event.__init__


def _event_init(self: Event, type: str, data: StripeObject) -> None:
    _orig_event_init(self, type, data)
    self.api_version = API_VERSION
    self.request = {"id": None, "idempotency_key": None}
    self.pending_webhooks = len(webhooks.endpoints)
    self.account = None


Event.__init__ = _event_init  # type: ignore[method-assign]


def emit(event_type: str, obj: StripeObject, previous: dict[str, Any] | None = None) -> None:
    event = Event(event_type, obj)
    if previous:
        event.data["previous_attributes"] = previous
    webhooks.schedule(event)


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in before.items() if after.get(k) != v}


# --- export: lenient expand and per-class fix-ups -----------------------------------------
_orig_export = StripeObject._export


def _find(key: str, object_id: str) -> StripeObject | None:
    obj = store.get(f"{key}:{object_id}")
    if obj is not None:
        return obj
    for store_key, value in store.items():
        if store_key.split(":", 1)[-1] == object_id:
            return value
    return None


def _expand(obj: Any, parts: list[str]) -> None:
    if isinstance(obj, list):
        for item in obj:
            _expand(item, parts)
        return
    if not isinstance(obj, dict) or not parts:
        return
    key, rest = parts[0], parts[1:]
    value = obj.get(key)
    if isinstance(value, str) and value:
        found = _find(key, value)
        if found is not None:
            value = obj[key] = found._export()
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


StripeObject._export = _export  # type: ignore[method-assign]


def _require(condition: object) -> None:
    """localstripe's validation idiom (callers turn AssertionError into a 400), minus `assert`."""
    if not condition:
        raise AssertionError


def _id_of(value: Any) -> Any:
    return value["id"] if isinstance(value, dict) and "id" in value else value


# --- account ------------------------------------------------------------------------------
class Account:
    """The one account behind every key; dj-stripe needs it to own the synced rows."""

    created = int(time.time())

    def _export(self, expand: Any = None) -> dict[str, Any]:
        return {
            "id": ACCOUNT_ID,
            "object": "account",
            "business_profile": {"name": "Revenue Agent System (devstripe)", "url": None},
            "business_type": "company",
            "capabilities": {"card_payments": "active", "transfers": "active"},
            "charges_enabled": True,
            "country": "US",
            "created": self.created,
            "default_currency": "usd",
            "details_submitted": True,
            "email": "devstripe@localhost",
            "livemode": False,
            "metadata": {},
            "payouts_enabled": True,
            "settings": {"dashboard": {"display_name": "devstripe", "timezone": "Etc/UTC"}},
            "type": "standard",
        }

    @classmethod
    def _api_retrieve(cls, id: str | None = None, **kwargs: Any) -> Account:
        if id not in (None, ACCOUNT_ID):
            raise UserError(404, f"No such account: '{id}'")
        return cls()


# --- prices -------------------------------------------------------------------------------
def _parse_tiers(tiers: Any) -> list[dict[str, Any]]:
    if not isinstance(tiers, list) or not tiers:
        raise AssertionError
    parsed = []
    previous = 0
    for i, tier in enumerate(tiers):
        _require(isinstance(tier, dict))
        up_to = tier.get("up_to")
        if up_to == "inf":
            _require(i == len(tiers) - 1)
            up_to = None
        else:
            up_to = try_convert_to_int(up_to)
            _require(isinstance(up_to, int) and up_to > previous)
            previous = up_to
        unit = try_convert_to_int(tier.get("unit_amount"))
        flat = try_convert_to_int(tier.get("flat_amount"))
        _require(unit is not None or flat is not None)
        for amount in (unit, flat):
            _require(amount is None or (isinstance(amount, int) and amount >= 0))
        parsed.append(
            {
                "flat_amount": flat,
                "flat_amount_decimal": None if flat is None else str(flat),
                "unit_amount": unit,
                "unit_amount_decimal": None if unit is None else str(unit),
                "up_to": up_to,
            }
        )
    _require(parsed[-1]["up_to"] is None)
    return parsed


def _parse_recurring(recurring: Any) -> dict[str, Any]:
    _require(isinstance(recurring, dict))
    interval = recurring.get("interval")
    interval_count = try_convert_to_int(recurring.get("interval_count", 1))
    usage_type = recurring.get("usage_type", "licensed")
    trial_period_days = try_convert_to_int(recurring.get("trial_period_days"))
    _require(interval in ("day", "week", "month", "year"))
    _require(isinstance(interval_count, int) and interval_count >= 1)
    _require(usage_type in ("licensed", "metered"))
    _require(trial_period_days is None or isinstance(trial_period_days, int))
    return {
        "aggregate_usage": None,
        "interval": interval,
        "interval_count": interval_count,
        "meter": None,
        "trial_period_days": trial_period_days,
        "usage_type": usage_type,
    }


class Price(StripeObject):
    object = "price"
    _id_prefix = "price_"

    def __init__(
        self,
        currency: str | None = None,
        product: str | None = None,
        product_data: dict[str, Any] | None = None,
        unit_amount: Any = None,
        recurring: dict[str, Any] | None = None,
        billing_scheme: str = "per_unit",
        tiers: Any = None,
        tiers_mode: str | None = None,
        lookup_key: str | None = None,
        transfer_lookup_key: Any = None,
        active: Any = True,
        metadata: dict[str, Any] | None = None,
        nickname: str | None = None,
        tax_behavior: str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        unit_amount = try_convert_to_int(unit_amount)
        active = try_convert_to_bool(active)
        transfer_lookup_key = try_convert_to_bool(transfer_lookup_key)
        try:
            _require(isinstance(currency, str) and len(currency) == 3)
            _require((product is None) != (product_data is None))
            _require(product is None or isinstance(product, str))
            _require(product_data is None or isinstance(product_data.get("name"), str))
            _require(isinstance(active, bool))
            _require(billing_scheme in ("per_unit", "tiered"))
            if billing_scheme == "per_unit":
                _require(isinstance(unit_amount, int) and unit_amount >= 0)
                _require(tiers is None and tiers_mode is None)
                parsed_tiers = None
            else:
                _require(unit_amount is None and recurring is not None)
                _require(tiers_mode in ("graduated", "volume"))
                parsed_tiers = _parse_tiers(tiers)
            parsed_recurring = None if recurring is None else _parse_recurring(recurring)
            _require(lookup_key is None or (isinstance(lookup_key, str) and lookup_key))
            _require(nickname is None or isinstance(nickname, str))
            _require(metadata is None or isinstance(metadata, dict))
            _require(tax_behavior in (None, "exclusive", "inclusive", "unspecified"))
        except AssertionError:
            raise UserError(400, "Bad request") from None

        if product is not None:
            Product._api_retrieve(product)  # 404 if it does not exist
        if lookup_key is not None:
            Price._claim_lookup_key(lookup_key, transfer=bool(transfer_lookup_key))
        if product_data is not None:
            product = Product(**product_data).id

        # All exceptions must be raised before this point.
        super().__init__()

        self.active = active
        self.billing_scheme = billing_scheme
        self.currency = str(currency).lower()
        self.currency_options = None
        self.custom_unit_amount = None
        self.lookup_key = lookup_key
        self.metadata = metadata or {}
        self.nickname = nickname
        self.product = product
        self.recurring = parsed_recurring
        self.tax_behavior = tax_behavior or "unspecified"
        self.tiers = parsed_tiers
        self.tiers_mode = tiers_mode
        self.transform_quantity = None
        self.type = "one_time" if parsed_recurring is None else "recurring"
        self.unit_amount = unit_amount
        self.unit_amount_decimal = None if unit_amount is None else str(unit_amount)

        if parsed_recurring is not None:
            # In Stripe a recurring price is also a plan with the same id.
            Plan(
                id=self.id,
                product=product,
                currency=self.currency,
                amount=unit_amount,
                interval=parsed_recurring["interval"],
                interval_count=parsed_recurring["interval_count"],
                usage_type=parsed_recurring["usage_type"],
                trial_period_days=parsed_recurring["trial_period_days"],
                billing_scheme=billing_scheme,
                tiers_mode=tiers_mode,
                tiers=[
                    {
                        "up_to": "inf" if t["up_to"] is None else t["up_to"],
                        "unit_amount": t["unit_amount"] or 0,
                        "flat_amount": t["flat_amount"] or 0,
                    }
                    for t in parsed_tiers or []
                ]
                or None,
                nickname=nickname,
                active=active,
                metadata=dict(self.metadata),
            )
        emit("price.created", self)

    @classmethod
    def _claim_lookup_key(cls, lookup_key: str, transfer: bool, owner: str | None = None) -> None:
        for key, other in list(store.items()):
            if key.startswith("price:") and other.lookup_key == lookup_key and other.id != owner:
                if not transfer:
                    raise UserError(
                        400,
                        f"A price (`{other.id}`) already uses that lookup key.",
                        {"code": "lookup_key_exists", "param": "lookup_key"},
                    )
                other.lookup_key = None

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> Price:
        obj = cls._api_retrieve(id)
        allowed = {"active", "metadata", "nickname", "lookup_key", "transfer_lookup_key"}
        allowed |= {"tax_behavior"}
        if set(data) - allowed:
            raise UserError(400, "Unexpected " + ", ".join(set(data) - allowed))
        before = obj._export()
        transfer = bool(try_convert_to_bool(data.pop("transfer_lookup_key", False)))
        if "active" in data:
            data["active"] = try_convert_to_bool(data["active"])
            if not isinstance(data["active"], bool):
                raise UserError(400, "Bad request")
        if data.get("lookup_key"):
            cls._claim_lookup_key(data["lookup_key"], transfer=transfer, owner=obj.id)
        elif "lookup_key" in data:
            data["lookup_key"] = None
        obj._update(**data)
        plan = store.get("plan:" + obj.id)
        if plan is not None:
            plan.active, plan.nickname, plan.metadata = obj.active, obj.nickname, dict(obj.metadata)
        emit("price.updated", obj, _changed(before, obj._export()))
        return obj

    @classmethod
    def _api_delete(cls, id: str) -> Any:
        raise UserError(405, "Prices cannot be deleted; archive them with active=false")

    @classmethod
    def _api_list_all(
        cls,
        url: str,
        active: Any = None,
        product: str | None = None,
        type: str | None = None,
        currency: str | None = None,
        lookup_keys: list[str] | None = None,
        limit: Any = None,
        starting_after: str | None = None,
        **kwargs: Any,
    ) -> List:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        active = try_convert_to_bool(active)
        li = super()._api_list_all(url, limit=limit, starting_after=starting_after)
        filters = {"active": active, "product": product, "type": type, "currency": currency}
        for attr, wanted in filters.items():
            if wanted is not None:
                li._list = [p for p in li._list if getattr(p, attr) == wanted]
        if lookup_keys is not None:
            keys = lookup_keys if isinstance(lookup_keys, list) else [lookup_keys]
            li._list = [p for p in li._list if p.lookup_key in keys]
        li._list.sort(key=lambda p: p.created, reverse=True)
        return li


def _price_for_plan(plan: Plan) -> Price | None:
    return store.get("price:" + plan.id)


def _plan_for_item(item: dict[str, Any]) -> Plan:
    """The Plan behind ``{"price": ...}`` or ``{"plan": ...}``; 400 for a one-time price."""
    price_id, plan_id = item.get("price"), item.get("plan")
    if (price_id is None) == (plan_id is None):
        raise UserError(400, "Each item needs exactly one of price or plan")
    if price_id is not None:
        price = Price._api_retrieve(price_id)
        if price.type != "recurring":
            raise UserError(400, f"The price `{price_id}` is not recurring.")
        return Plan._api_retrieve(price_id)
    return Plan._api_retrieve(plan_id)


# --- products -----------------------------------------------------------------------------
_orig_product_update = Product._api_update


def _product_update(cls: type[Product], id: str, **data: Any) -> Product:
    before = cls._api_retrieve(id)._export()
    if "active" in data:
        data["active"] = try_convert_to_bool(data["active"])
    obj = _orig_product_update(id, **data)
    emit("product.updated", obj, _changed(before, obj._export()))
    return obj


Product._api_update = classmethod(_product_update)  # type: ignore[method-assign,assignment]


# --- subscription items -------------------------------------------------------------------
_orig_si_init = SubscriptionItem.__init__


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


def _si_current_period(self: SubscriptionItem) -> dict[str, int]:
    start = int(time.time())
    if self._subscription and store.get("subscription:" + self._subscription) is not None:
        start = Subscription._api_retrieve(self._subscription).start_date
    end = _period_end(start, self.plan.interval, self.plan.interval_count or 1)
    return {"start": start, "end": end}


def _si_amount(self: SubscriptionItem) -> int:
    plan = self.plan
    if plan.usage_type == "metered":
        return 0  # billed in arrears from usage; devstripe records no usage
    if plan.billing_scheme == "tiered":
        return tiered_amount(plan.tiers, plan.tiers_mode, self.quantity)
    return plan.amount * self.quantity


def _si_fixup(self: SubscriptionItem, obj: dict[str, Any]) -> None:
    price = _price_for_plan(self.plan)
    obj["price"] = price._export() if price is not None else None
    obj["subscription"] = self._subscription
    obj["discounts"] = []
    obj["billing_thresholds"] = None
    period = self._current_period()
    obj["current_period_start"] = period["start"]
    obj["current_period_end"] = period["end"]
    if self.plan.usage_type == "metered":
        obj.pop("quantity", None)


SubscriptionItem.__init__ = _si_init  # type: ignore[method-assign]
SubscriptionItem._current_period = _si_current_period  # type: ignore[method-assign]
SubscriptionItem._calculate_amount = _si_amount  # type: ignore[method-assign]
SubscriptionItem._devstripe_fixup = _si_fixup  # type: ignore[attr-defined]


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
    trial_end = int(time.time()) if trial_end == "now" else try_convert_to_int(trial_end)
    cancel_at_period_end = try_convert_to_bool(cancel_at_period_end)
    try:
        _require(isinstance(customer, str) and customer.startswith("cus_"))
        _validate_items(items, updating=False)
        _require(items)
        _require(payment_behavior in ("allow_incomplete", "error_if_incomplete"))
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

    now = int(time.time())
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
    self.start_date = now
    self.billing_cycle_anchor = now
    self._enable_incomplete_payments = payment_behavior != "error_if_incomplete"

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
    if self.cancel_at_period_end:
        self.cancel_at = self.current_period_end

    if trial_period_days or trial_end:
        self.status = "trialing"
        self.trial_start = now
        self.trial_end = trial_end or now + trial_period_days * 86400
    else:
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

    Prorations are not computed: a changed item is billed at its new price from the next
    period (as with ``proration_behavior="none"``). A discount is recorded on the
    subscription (``discount``, for MRR) but never applied to invoices.
    """
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    if self.status == "canceled":
        raise UserError(400, "A canceled subscription can only update its metadata.")
    cancel_at_period_end = try_convert_to_bool(cancel_at_period_end)
    trial_end = int(time.time()) if trial_end == "now" else try_convert_to_int(trial_end)
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
        self.canceled_at = int(time.time()) if cancel_at_period_end else None
    if default_payment_method is not None:
        self.default_payment_method = default_payment_method or None
    if description is not None:
        self.description = description
    if trial_end is not None:
        now = int(time.time())
        self.trial_start = self.trial_start or now
        self.trial_end = trial_end
        if trial_end > now and self.status in ("active", "trialing"):
            self.status = "trialing"
        elif trial_end <= now and self.status == "trialing":
            # Ending a trial invoices the first period now, as Stripe does; a declined
            # payment leaves the subscription past_due with the invoice open.
            self.status = "active"
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


def _discount(sub: Subscription, coupon: Any) -> dict[str, Any] | None:
    """Stripe's ``discount`` object for ``coupon`` on ``sub``, starting now."""
    if coupon is None:
        return None
    start = int(time.time())
    end = None
    if coupon.duration == "repeating":
        begin = datetime.fromtimestamp(start, tz=UTC)
        end = calendar.timegm(
            (begin + relativedelta(months=coupon.duration_in_months)).utctimetuple()
        )
    return {
        "id": "di_" + sub.id[4:],
        "object": "discount",
        "coupon": coupon._export(),
        "customer": sub.customer,
        "subscription": sub.id,
        "start": start,
        "end": end,
    }


def _subscription_delete(cls: type[Subscription], id: str, **kwargs: Any) -> Subscription:
    obj = cls._api_retrieve(id)
    if obj.status == "canceled":
        raise UserError(400, f"The subscription {id} is already canceled.")
    now = int(time.time())
    obj.status = "canceled"
    obj.canceled_at = obj.canceled_at or now
    obj.ended_at = now
    emit("customer.subscription.deleted", obj)
    return obj


def _subscription_fixup(self: Subscription, obj: dict[str, Any]) -> None:
    obj["default_tax_rates"] = obj.get("default_tax_rates") or []
    obj["discounts"] = []
    obj.setdefault("default_payment_method", None)
    obj["currency"] = self.items._list[0].plan.currency if self.items._list else None
    single = len(self.items._list) == 1
    obj["plan"] = obj["plan"] if single else None
    obj["quantity"] = self.items._list[0].quantity if single else None


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

Subscription.__init__ = _subscription_init  # type: ignore[method-assign]
Subscription._update = _subscription_update  # type: ignore[method-assign]
Subscription._api_delete = classmethod(_subscription_delete)  # type: ignore[method-assign,assignment]
Subscription._devstripe_fixup = _subscription_fixup  # type: ignore[attr-defined]


# --- invoices -----------------------------------------------------------------------------
def _pay_invoice(cls: type[Invoice], id: str, **kwargs: Any) -> Invoice:
    """Pay with the subscription's or the customer's default payment method.

    A decline leaves the invoice open and reports ``invoice.payment_failed`` (localstripe
    swallows declines here). Raises 402 only for ``payment_behavior=error_if_incomplete``.
    """
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    obj = cls._api_retrieve(id)
    if obj.status == "paid":
        raise UserError(400, "Invoice is already paid")
    if obj.status not in ("draft", "open"):
        raise UserError(400, "Bad request")
    if obj.status == "draft":
        obj._finalize()
    if obj.total <= 0:
        obj._on_payment_success()
        return obj

    sub = Subscription._api_retrieve(obj.subscription) if obj.subscription else None
    pm_id = getattr(sub, "default_payment_method", None)
    if pm_id is None:
        source = Customer._api_retrieve(obj.customer)._get_default_payment_method_or_source()
        if source is None:
            raise UserError(404, "This customer has no payment method")
        pm_id = source.id
    pi = PaymentIntent(
        amount=obj.total, currency=obj.currency, customer=obj.customer, payment_method=pm_id
    )
    obj.payment_intent = pi.id
    pi.invoice = obj.id
    pi._confirm(on_failure_now=lambda: None)
    if pi.latest_charge is not None and pi.latest_charge.status == "failed":
        emit("payment_intent.payment_failed", pi)
        obj._on_payment_failure_now()
    return obj


def _pay_invoice_route(id: str, **kwargs: Any) -> Invoice:
    """``POST /v1/invoices/<id>/pay``: like Stripe, a decline answers 402."""
    obj = Invoice._api_pay_invoice(id, **kwargs)
    charge = obj.charge
    if charge is not None and charge.status == "failed":
        charge._raise_failure()
    return obj


_orig_finalize = Invoice._finalize
_orig_invoice_paid = Invoice._on_payment_success


def _finalize(self: Invoice) -> None:
    _orig_finalize(self)
    emit("invoice.finalized", self)


def _on_payment_success(self: Invoice) -> None:
    self.status_transitions["paid_at"] = int(time.time())
    emit("invoice.paid", self)
    _orig_invoice_paid(self)


def _invoice_fixup(self: Invoice, obj: dict[str, Any]) -> None:
    obj["default_tax_rates"] = obj.get("default_tax_rates") or []
    obj["discounts"] = []
    obj["total_discount_amounts"] = []
    obj["charge"] = _id_of(obj.get("charge"))
    obj["paid"] = obj["status"] == "paid"
    obj["amount_remaining"] = 0 if obj["paid"] else obj["amount_due"]
    obj["billing_reason"] = obj.get("billing_reason") or (
        "subscription_create" if self.subscription else "manual"
    )
    obj.setdefault("number", None)
    for key in ("hosted_invoice_url", "invoice_pdf", "footer", "default_payment_method"):
        obj.setdefault(key, None)


def _line_fixup(self: InvoiceLineItem, obj: dict[str, Any]) -> None:
    price = _price_for_plan(self.plan) if self.plan is not None else None
    obj["price"] = price._export() if price is not None else None
    obj["discounts"] = []
    obj["discount_amounts"] = []
    obj["tax_amounts"] = obj.get("tax_amounts") or []
    obj.setdefault("subscription_item", None)
    obj["pricing"] = {
        "type": "price_details",
        "price_details": {
            "price": price.id if price else None,
            "product": price.product if price else None,
        },
    }


Invoice._api_pay_invoice = classmethod(_pay_invoice)  # type: ignore[method-assign,assignment]
Invoice._finalize = _finalize  # type: ignore[method-assign]
Invoice._on_payment_success = _on_payment_success  # type: ignore[method-assign]
Invoice._devstripe_fixup = _invoice_fixup  # type: ignore[attr-defined]
InvoiceLineItem._devstripe_fixup = _line_fixup  # type: ignore[attr-defined]


# --- charges, payment intents, payment methods, refunds -----------------------------------
_orig_trigger_payment = Charge._trigger_payment
_orig_set_auth_failure = Charge._set_auth_failure


def _trigger_payment(self: Charge, on_success: Any = None) -> None:
    def succeeded() -> None:
        emit("charge.succeeded", self)
        if on_success:
            on_success()

    _orig_trigger_payment(self, on_success=succeeded)


def _set_auth_failure(self: Charge) -> None:
    _orig_set_auth_failure(self)
    emit("charge.failed", self)


def _charge_fixup(self: Charge, obj: dict[str, Any]) -> None:
    if self.invoice is None and self.payment_intent:
        pi = store.get("payment_intent:" + self.payment_intent)
        obj["invoice"] = getattr(pi, "invoice", None)
    obj["amount_captured"] = self.amount if self.captured and self.paid else 0
    obj["disputed"] = bool(getattr(self, "disputed", False))  # set by disputes.py
    obj["billing_details"] = {}
    obj["outcome"] = {
        "type": "authorized" if self.status == "succeeded" else "issuer_declined",
        "network_status": "approved_by_network"
        if self.status == "succeeded"
        else "declined_by_network",
    }
    pm = store.get("payment_method:" + (self.payment_method or ""))
    card = getattr(pm, "card", None)
    obj["payment_method_details"] = {"type": "card", "card": card} if card else None


def _payment_intent_fixup(self: PaymentIntent, obj: dict[str, Any]) -> None:
    obj["latest_charge"] = _id_of(obj.get("latest_charge"))
    obj["amount_received"] = self.amount if obj["status"] == "succeeded" else 0
    obj["payment_method_types"] = ["card"]
    obj.pop("charges", None)


_orig_attach = PaymentMethod._api_attach
_orig_detach = PaymentMethod._api_detach


def _attach(cls: type[PaymentMethod], id: str, **kwargs: Any) -> PaymentMethod:
    obj = _orig_attach(id, **kwargs)
    emit("payment_method.attached", obj)
    return obj


def _detach(cls: type[PaymentMethod], id: str, **kwargs: Any) -> PaymentMethod:
    obj = _orig_detach(id, **kwargs)
    emit("payment_method.detached", obj)
    return obj


_orig_refund_init = Refund.__init__


def _refund_init(
    self: Refund,
    charge: str | None = None,
    payment_intent: str | None = None,
    amount: Any = None,
    metadata: dict[str, Any] | None = None,
    reason: str | None = None,
    **kwargs: Any,
) -> None:
    if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
        raise UserError(400, "Bad request")
    charge_obj = None
    if isinstance(charge, str):
        charge_obj = Charge._api_retrieve(charge)
    elif isinstance(payment_intent, str):
        charge_obj = PaymentIntent._api_retrieve(payment_intent).latest_charge
    if charge_obj is not None and charge_obj.status == "succeeded":
        remaining = charge_obj.amount - charge_obj.amount_refunded
        if remaining <= 0:
            raise UserError(
                400,
                f"Charge {charge_obj.id} has already been refunded.",
                {"code": "charge_already_refunded"},
            )
        wanted = try_convert_to_int(amount)
        if isinstance(wanted, int) and wanted > remaining:
            raise UserError(
                400,
                f"Refund amount ({wanted}) is greater than unrefunded amount ({remaining}).",
                {"code": "amount_too_large", "param": "amount"},
            )
    _orig_refund_init(
        self,
        charge=charge,
        payment_intent=payment_intent,
        amount=amount,
        metadata=metadata,
        **kwargs,
    )
    self.reason = reason
    charge_obj = Charge._api_retrieve(self.charge)
    self.payment_intent = self.payment_intent or charge_obj.payment_intent
    emit("refund.created", self)
    emit("charge.refunded", charge_obj)


Charge._trigger_payment = _trigger_payment  # type: ignore[method-assign]
Charge._set_auth_failure = _set_auth_failure  # type: ignore[method-assign]
Charge._devstripe_fixup = _charge_fixup  # type: ignore[attr-defined]
PaymentIntent._devstripe_fixup = _payment_intent_fixup  # type: ignore[attr-defined]
PaymentMethod._api_attach = classmethod(_attach)  # type: ignore[method-assign,assignment]
PaymentMethod._api_detach = classmethod(_detach)  # type: ignore[method-assign,assignment]
Refund.__init__ = _refund_init  # type: ignore[method-assign]


# --- webhook endpoints (Stripe's API for them; deliveries as /_config/webhooks) ------------
class WebhookEndpoint(StripeObject):
    """``/v1/webhook_endpoints``: the secret is returned on create only, as in Stripe."""

    object = "webhook_endpoint"
    _id_prefix = "we_"

    def __init__(
        self,
        url: str | None = None,
        enabled_events: list[str] | None = None,
        api_version: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        try:
            _require(isinstance(url, str) and url.startswith(("http://", "https://")))
            _require(isinstance(enabled_events, list) and enabled_events)
            _require(metadata is None or isinstance(metadata, dict))
        except AssertionError:
            raise UserError(400, "Bad request") from None
        super().__init__()
        self.url = url
        self.enabled_events = enabled_events
        self.api_version = api_version
        self.description = description
        self.metadata = metadata or {}
        self.status = "enabled"
        self.application = None
        self._secret = "whsec_" + ls.random_id(32)
        webhooks.register(self.id, str(url), self._secret, enabled_events)

    @classmethod
    def _api_create(cls, **data: Any) -> WebhookEndpoint:
        obj = cls(**data)
        obj._reveal_secret = True
        return obj

    def _devstripe_fixup(self, obj: dict[str, Any]) -> None:
        if getattr(self, "_reveal_secret", False):
            obj["secret"] = self._secret
            self._reveal_secret = False

    @classmethod
    def _api_delete(cls, id: str) -> Any:
        webhooks.unregister(id)
        return super()._api_delete(id)


def _product_features(id: str, **kwargs: Any) -> List:
    """dj-stripe syncs entitlements features with every product; there are none here."""
    Product._api_retrieve(id)
    return List(f"/v1/products/{id}/features")


# Served in addition to localstripe's own routes (and before them).
extra_routes: list[tuple[str, str, Any]] = [
    ("GET", "/v1/products/{id}/features", _product_features),
    ("GET", "/v1/account", Account._api_retrieve),
    ("GET", "/v1/accounts/{id}", Account._api_retrieve),
    ("POST", "/v1/invoices/{id}/pay", _pay_invoice_route),
]
crud_classes: list[type[StripeObject]] = [Price, WebhookEndpoint]
