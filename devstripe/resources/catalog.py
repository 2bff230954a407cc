"""Prices and products (the accounts are Connect's: ``devstripe/connect.py``).

- a Price resource (per-unit and tiered, recurring or one-time); a recurring price is
  also a Plan with the same id, as in Stripe, so localstripe's subscription code runs on it;
  a plan renders as Stripe's (tiers as the price's, the last one ``up_to: null``; none of
  localstripe's pre-2018 ``name``/``statement_descriptor``);
- products as Stripe renders them (``images``, ``marketing_features``, ``updated``; none of
  localstripe's removed ``caption``/``attributes``), ``product.updated`` events, and an empty
  ``GET /v1/products/<id>/features``.
"""

from __future__ import annotations

from typing import Any

from localstripe.errors import UserError
from localstripe.resources import (
    List,
    Plan,
    Product,
    StripeObject,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)

from .base import _changed, _require, emit, now


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


def _plan_tiers(plan: Plan) -> list[dict[str, Any]] | None:
    """Stripe's rendering of a plan's tiers: its price's, or localstripe's with ``inf`` as null."""
    if plan.tiers is None:
        return None
    price = _price_for_plan(plan)
    if price is not None and price.tiers is not None:
        return [dict(tier) for tier in price.tiers]
    tiers = []
    for tier in plan.tiers:
        flat = try_convert_to_int(tier.get("flat_amount"))
        unit = try_convert_to_int(tier.get("unit_amount"))
        tiers.append(
            {
                "flat_amount": flat,
                "flat_amount_decimal": None if flat is None else str(flat),
                "unit_amount": unit,
                "unit_amount_decimal": None if unit is None else str(unit),
                "up_to": None if tier["up_to"] == "inf" else try_convert_to_int(tier["up_to"]),
            }
        )
    return tiers


def _plan_fixup(self: Plan, obj: dict[str, Any]) -> None:
    # localstripe's pre-2018 properties, read from the product.
    obj.pop("name", None)
    obj.pop("statement_descriptor", None)
    obj["tiers"] = _plan_tiers(self)
    obj["amount_decimal"] = None if self.amount is None else str(self.amount)
    obj["meter"] = None
    obj["transform_usage"] = None


# --- products -----------------------------------------------------------------------------
_orig_product_init: Any = None  # the original, captured by install()
_orig_product_update: Any = None  # the original, captured by install()
# Stripe's product parameters localstripe does not know; stored and rendered as given.
_PRODUCT_EXTRAS = ("images", "marketing_features", "tax_code", "unit_label")


def _product_extras(data: dict[str, Any]) -> dict[str, Any]:
    extras = {key: data.pop(key) for key in _PRODUCT_EXTRAS if key in data}
    try:
        for key in ("images", "marketing_features"):
            _require(isinstance(extras.get(key, []), list))
        _require(all(isinstance(i, str) for i in extras.get("images", [])))
        for feature in extras.get("marketing_features", []):
            _require(isinstance(feature, dict) and isinstance(feature.get("name"), str))
        for key in ("tax_code", "unit_label"):
            _require(extras.get(key) is None or isinstance(extras[key], str))
    except AssertionError:
        raise UserError(400, "Bad request") from None
    return extras


def _product_init(self: Product, **data: Any) -> None:
    for removed in ("caption", "attributes"):
        if removed in data:
            raise UserError(400, f"Received unknown parameter: {removed}")
    extras = _product_extras(data)
    _orig_product_init(self, **data)
    self._images = list(extras.get("images", []))
    self._marketing_features = [{"name": f["name"]} for f in extras.get("marketing_features", [])]
    self._tax_code = extras.get("tax_code")
    self._unit_label = extras.get("unit_label")
    self._updated = self.created


def _product_update(cls: type[Product], id: str, **data: Any) -> Product:
    obj = cls._api_retrieve(id)
    before = obj._export()
    if "active" in data:
        data["active"] = try_convert_to_bool(data["active"])
    extras = _product_extras(data)
    obj = _orig_product_update(id, **data)
    if "images" in extras:
        obj._images = list(extras["images"])
    if "marketing_features" in extras:
        obj._marketing_features = [{"name": f["name"]} for f in extras["marketing_features"]]
    for key in ("tax_code", "unit_label"):
        if key in extras:
            setattr(obj, "_" + key, extras[key] or None)
    obj._updated = now()
    emit("product.updated", obj, _changed(before, obj._export()))
    return obj


def _product_fixup(self: Product, obj: dict[str, Any]) -> None:
    # Removed from Stripe's API long ago; localstripe still renders them.
    obj.pop("caption", None)
    obj.pop("attributes", None)
    obj["images"] = list(getattr(self, "_images", []))
    obj["marketing_features"] = list(getattr(self, "_marketing_features", []))
    obj["updated"] = getattr(self, "_updated", self.created)
    obj["tax_code"] = getattr(self, "_tax_code", None)
    obj["unit_label"] = getattr(self, "_unit_label", None)
    obj["package_dimensions"] = None
    obj.setdefault("default_price", None)


def _product_features(id: str, **kwargs: Any) -> List:
    """dj-stripe syncs entitlements features with every product; there are none here."""
    Product._api_retrieve(id)
    return List(f"/v1/products/{id}/features")


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global _orig_product_init, _orig_product_update
    Plan._devstripe_fixup = _plan_fixup
    _orig_product_init = Product.__init__
    _orig_product_update = Product._api_update
    Product.__init__ = _product_init
    Product._api_update = classmethod(_product_update)
    Product._devstripe_fixup = _product_fixup
