"""Catalog pulls: Stripe Products and Prices become Plans and PlanPrices.

The catalog may start in Stripe. A Product made in Stripe's dashboard becomes a Plan
(``source="stripe"``) and each of its recurring Prices a PlanPrice, so it can be subscribed to
through the API at once. ``stripe_catalog sync`` pulls everything (:func:`stripe_catalog_sync`);
the ``product.*`` and ``price.*`` webhooks keep it current after that (:func:`plan_pull_current`,
:func:`plan_price_pull_current`, :func:`plan_pull_deleted`, :func:`plan_price_pull_deleted`).
Both paths read Stripe's *current* state (the sync lists it; a webhook reads dj-stripe's mirror
row, which dj-stripe re-retrieves for each event) and go through the same functions, so a
replay, a retry, an out-of-order event or a second sync lands on the same rows.

Who owns what:

- A plan made in our admin (``source="admin"``) stays ours: a pull only links Stripe ids to it
  (a Product by ``metadata[plan]`` = its slug, a Price by lookup key) and never changes its
  fields; our push and archive keep working as before. A Price our push made carries
  ``metadata[plan_price]``; one that no longer holds its lookup key (superseded by a re-price)
  is left alone.
- A plan pulled from Stripe (``source="stripe"``) is Stripe's: name, description, archived
  (the Product is not ``active``) and entitlements (the Product's metadata, see
  :data:`PRODUCT_METADATA`) come from Stripe, and every field of its PlanPrices from their
  Prices. Our admin shows it read-only and push refuses it. A Price made in Stripe on an admin
  plan's Product becomes a Stripe-owned PlanPrice of that plan.

Not pulled: another stream's products and prices (``metadata[stream]`` other than
``subscriptions``, e.g. the Prices of recurring content licences). Not pulled (each named in
the sync's report and in the log): one-time prices (not
subscribable), prices with ``transform_quantity`` or a sub-minor-unit amount (our PlanPrice
holds whole minor units), and a Product whose entitlement metadata does not parse: fail closed,
nothing goes on sale with a guessed limit (an existing plan keeps its entitlements and still
follows the Product's ``active``). Only a Price's own currency is offered (``currency_options``
is not pulled).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import stripe
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from djstripe import models as djstripe_models

from revenue_site.stripe_setup import stripe_api_key
from subscriptions.models import Plan, PlanPrice
from subscriptions.pricing import TiersError, tiers_parse

logger = logging.getLogger(__name__)

Source = Plan.Source

# Product metadata a Stripe-made plan's fields come from (documented in the README and in
# `manage.py stripe_catalog sync --help`). Absent or empty keys take the default.
PRODUCT_METADATA: dict[str, str] = {
    "plan": "the plan's slug (default: from the product name); links an unlinked admin plan "
    "with that slug instead of making a new plan",
    "tier_rank": "whole number >= 0, higher is a higher tier (default 0)",
    "seats": "whole number >= 0, or `unlimited` (default: unlimited)",
    "api_calls_per_month": "whole number >= 0, or `unlimited` (default: unlimited)",
    "features": "the feature flags that are on, comma-separated (`sso,audit_log`), or a JSON "
    'object (`{"sso": true, "audit_log": false}`) (default: none)',
}
# Price metadata read when the Price itself does not say.
PRICE_METADATA: dict[str, str] = {
    "trial_days": "whole number >= 0: the default trial when `recurring.trial_period_days` "
    "is unset (default: no trial)",
}
_TIER_RANK_MAX = 32767  # PositiveSmallIntegerField
_TRIAL_DAYS_MAX = 32767


class PullRefused(Exception):
    """A Stripe object this catalog cannot represent; the message says why."""


@dataclass(frozen=True)
class CatalogSyncResult:
    products: int
    prices: int
    plans_created: int = 0
    plans_updated: int = 0
    plans_linked: int = 0
    prices_created: int = 0
    prices_updated: int = 0
    prices_linked: int = 0
    deactivated: int = 0
    one_time_skipped: int = 0
    refused: tuple[str, ...] = ()


@dataclass
class _Report:
    counts: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)

    def add(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def refuse(self, message: str) -> None:
        logger.warning("stripe catalog pull: %s", message)
        self.refused.append(message)


def _metadata(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(obj.get("metadata") or {}).items()}


def _id_of(value: Any) -> str:
    return str(value["id"]) if isinstance(value, Mapping) else str(value)


def _whole(meta: Mapping[str, str], key: str, *, maximum: int | None = None) -> int | None:
    raw = meta.get(key, "").strip()
    if raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise PullRefused(f"metadata[{key}]={raw!r} is not a whole number") from None
    if value < 0 or (maximum is not None and value > maximum):
        raise PullRefused(f"metadata[{key}]={raw!r} is out of range")
    return value


def _limit(meta: Mapping[str, str], key: str) -> int | None:
    """An entitlement limit: a whole number, or None (unlimited) when absent or `unlimited`."""
    if meta.get(key, "").strip().lower() == "unlimited":
        return None
    return _whole(meta, key)


def _features(meta: Mapping[str, str]) -> dict[str, bool]:
    raw = meta.get("features", "").strip()
    if not raw:
        return {}
    if raw.startswith("{"):
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise PullRefused(f"metadata[features]={raw!r} is not valid JSON") from None
        if not isinstance(parsed, dict) or not all(isinstance(v, bool) for v in parsed.values()):
            raise PullRefused("metadata[features] must map flag names to true or false")
        return {str(k): v for k, v in parsed.items()}
    return dict.fromkeys((name.strip() for name in raw.split(",") if name.strip()), True)


def _plan_fields(product: Mapping[str, Any]) -> dict[str, Any]:
    """A Stripe-owned plan's fields from its Product. Raises PullRefused."""
    meta = _metadata(product)
    return {
        "name": str(product.get("name") or product["id"])[:100],
        "description": str(product.get("description") or ""),
        "tier_rank": _whole(meta, "tier_rank", maximum=_TIER_RANK_MAX) or 0,
        "seats": _limit(meta, "seats"),
        "api_calls_per_month": _limit(meta, "api_calls_per_month"),
        "features": _features(meta),
    }


def _free_slug(wanted: str, *, product_id: str, plan: Plan | None) -> str:
    """`wanted` slugified, or made unique with the product id when another plan holds it."""
    taken = Plan.objects.exclude(pk=plan.pk) if plan is not None else Plan.objects.all()
    base = slugify(wanted)[:64] or "plan"
    candidates = [base, f"{base[:40]}-{slugify(product_id)}"[:64]]
    for candidate in candidates:
        if not taken.filter(slug=candidate).exists():
            return candidate
    number = 2
    while taken.filter(slug=f"{candidates[1][:58]}-{number}").exists():
        number += 1
    return f"{candidates[1][:58]}-{number}"


def _save_changes(row: Any, fields: Mapping[str, Any]) -> bool:
    changed = [name for name, value in fields.items() if getattr(row, name) != value]
    for name in changed:
        setattr(row, name, fields[name])
    if changed:
        row.save(update_fields=[*changed, "updated_at"])
    return bool(changed)


def _product_pull(product: Mapping[str, Any], report: _Report) -> tuple[Plan | None, bool]:
    """The plan for `product`, created or updated when Stripe owns it; (plan, created)."""
    product_id = str(product["id"])
    meta = _metadata(product)
    if meta.get("stream", "subscriptions") != "subscriptions":
        # Another stream's product (a content licence's recurring Price): not a plan.
        report.add("other_stream_skipped")
        return None, False
    plan = Plan.objects.select_for_update().filter(stripe_product_id=product_id).first()
    if plan is not None and plan.source == Source.ADMIN:
        return plan, False
    if plan is None:
        slug = meta.get("plan", "").strip()
        admin_plan = (
            Plan.objects.select_for_update()
            .filter(slug=slug, source=Source.ADMIN, stripe_product_id="")
            .first()
            if slug
            else None
        )
        if admin_plan is not None:
            admin_plan.stripe_product_id = product_id
            admin_plan.save(update_fields=["stripe_product_id", "updated_at"])
            report.add("plans_linked")
            return admin_plan, False
        if meta.get("plan_id"):
            report.refuse(
                f"product {product_id}: pushed from an admin (metadata[plan_id]) but no "
                f"unlinked plan has the slug {slug!r}"
            )
            return None, False
    active = bool(product.get("active"))
    try:
        fields = _plan_fields(product)
    except PullRefused as exc:
        report.refuse(f"product {product_id}: {exc}")
        if plan is not None and _save_changes(plan, {"is_archived": not active}):
            report.add("plans_updated")
        return None, False
    fields["is_archived"] = not active
    if plan is None:
        plan, created = Plan.objects.get_or_create(
            stripe_product_id=product_id,
            defaults={
                **fields,
                "slug": _free_slug(
                    meta.get("plan") or fields["name"], product_id=product_id, plan=None
                ),
                "source": Source.STRIPE,
            },
        )
        report.add("plans_created" if created else "plans_updated")
        return plan, created
    wanted_slug = meta.get("plan", "").strip()
    if wanted_slug and slugify(wanted_slug)[:64] != plan.slug:
        fields["slug"] = _free_slug(wanted_slug, product_id=product_id, plan=plan)
    if _save_changes(plan, fields):
        report.add("plans_updated")
    return plan, False


def _minor(amount: Any, decimal: Any, what: str) -> int | None:
    """Whole minor units from Stripe's `amount` / `amount_decimal` pair (None: neither set)."""
    if amount is not None:
        return int(amount)
    if decimal in (None, ""):
        return None
    try:
        value = Decimal(str(decimal))
    except InvalidOperation:
        raise PullRefused(f"{what} {decimal!r} is not a number") from None
    if value != value.to_integral_value():
        raise PullRefused(f"{what} {decimal} is a fraction of a minor unit")
    return int(value)


def _price_fields(price: Mapping[str, Any]) -> dict[str, Any]:
    """A Stripe-owned PlanPrice's fields from its (recurring) Price. Raises PullRefused."""
    recurring = price["recurring"]
    if price.get("transform_quantity"):
        raise PullRefused("transform_quantity is not supported")
    scheme = price.get("billing_scheme") or PlanPrice.BillingScheme.PER_UNIT
    fields: dict[str, Any] = {"billing_scheme": scheme}
    if scheme == PlanPrice.BillingScheme.PER_UNIT:
        unit_amount = _minor(price.get("unit_amount"), price.get("unit_amount_decimal"), "amount")
        if unit_amount is None:
            raise PullRefused("a per-unit price without an amount")
        fields.update(unit_amount=unit_amount, tiers_mode="", tiers=[])
    elif scheme == PlanPrice.BillingScheme.TIERED:
        tiers = price.get("tiers")
        if not tiers or price.get("tiers_mode") not in PlanPrice.TiersMode.values:
            raise PullRefused("a tiered price without its tiers (retrieve with expand=tiers)")
        try:
            parsed = tiers_parse(
                [
                    {
                        "up_to": t.get("up_to"),
                        "unit_amount": _minor(
                            t.get("unit_amount"), t.get("unit_amount_decimal"), "tier amount"
                        ),
                        "flat_amount": _minor(
                            t.get("flat_amount"), t.get("flat_amount_decimal"), "tier flat amount"
                        ),
                    }
                    for t in tiers
                ]
            )
        except TiersError as exc:
            raise PullRefused(str(exc)) from None
        fields.update(unit_amount=None, tiers_mode=price["tiers_mode"], tiers=parsed)
    else:
        raise PullRefused(f"billing scheme {scheme!r} is not supported")
    interval = recurring.get("interval")
    if interval not in PlanPrice.Interval.values:
        raise PullRefused(f"interval {interval!r} is not supported")
    trial_days = recurring.get("trial_period_days")
    if trial_days is None:
        trial_days = _whole(_metadata(price), "trial_days", maximum=_TRIAL_DAYS_MAX)
    fields.update(
        nickname=str(price.get("nickname") or "")[:100],
        currency=str(price["currency"]).lower(),
        interval=interval,
        interval_count=int(recurring.get("interval_count") or 1),
        usage_type=recurring.get("usage_type") or PlanPrice.UsageType.LICENSED,
        trial_days=trial_days,
        active=bool(price.get("active")),
    )
    return fields


def _lookup_key_for(price_id: str, wanted: str | None, row: PlanPrice | None) -> str:
    """Our (unique) lookup key for a Stripe-owned price: Stripe's, else the price id.

    Stripe moves a lookup key between prices (`transfer_lookup_key`); the row that held it
    before gives it up (takes its own price id) even if its price's update is not pulled yet.
    """
    if not wanted:
        return price_id
    holder = PlanPrice.objects.select_for_update().filter(lookup_key=wanted)
    if row is not None:
        holder = holder.exclude(pk=row.pk)
    other = holder.first()
    if other is None:
        return wanted
    if other.source == Source.STRIPE:
        _save_changes(other, {"lookup_key": other.stripe_price_id or f"planprice-{other.pk}"})
        return wanted
    return price_id  # an admin price (not in Stripe yet) holds it; ours stays apart


def _price_pull(
    price: Mapping[str, Any],
    report: _Report,
    *,
    plan_for: Callable[[str], Plan | None] | None = None,
) -> PlanPrice | None:
    """The PlanPrice for `price`: linked when our admin owns it, else created or updated."""
    price_id = str(price["id"])
    if price.get("type") != "recurring" or not price.get("recurring"):
        report.add("one_time_skipped")
        return None
    if _metadata(price).get("stream", "subscriptions") != "subscriptions":
        report.add("other_stream_skipped")  # e.g. a content licence's price: not a plan's
        return None
    row = PlanPrice.objects.select_for_update().filter(stripe_price_id=price_id).first()
    if row is not None and row.source == Source.ADMIN:
        return row
    lookup_key = price.get("lookup_key") or None
    if row is None and lookup_key:
        # Our admin's price, or the current holder of its lookup key (as before this pull).
        admin_price = (
            PlanPrice.objects.select_for_update()
            .filter(lookup_key=lookup_key, source=Source.ADMIN)
            .first()
        )
        if admin_price is not None:
            admin_price.stripe_price_id = price_id
            admin_price.save(update_fields=["stripe_price_id", "updated_at"])
            report.add("prices_linked")
            return admin_price
    if row is None and _metadata(price).get("plan_price"):
        return None  # pushed by our admin, since superseded by a re-price: not for sale
    product_id = _id_of(price["product"])
    plan = Plan.objects.filter(stripe_product_id=product_id).first()
    if plan is None and plan_for is not None:
        plan = plan_for(product_id)
    if plan is None:
        report.refuse(f"price {price_id}: its product {product_id} is not a plan")
        return None
    try:
        fields = _price_fields(price)
    except PullRefused as exc:
        report.refuse(f"price {price_id}: {exc}")
        return None
    fields["plan"] = plan
    fields["lookup_key"] = _lookup_key_for(price_id, lookup_key, row)
    if row is None:
        row = PlanPrice.objects.create(stripe_price_id=price_id, source=Source.STRIPE, **fields)
        report.add("prices_created")
    elif _save_changes(row, fields):
        report.add("prices_updated")
    return row


def _product_retrieve(product_id: str) -> Any | None:
    try:
        return stripe.Product.retrieve(product_id, api_key=stripe_api_key())
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise


def _pull_new_plan_prices(plan: Plan, report: _Report) -> None:
    """A plan made now (e.g. its metadata was just fixed) gets the prices it already has."""
    listing: Any = stripe.Price.list(
        product=plan.stripe_product_id, limit=100, expand=["data.tiers"], api_key=stripe_api_key()
    )
    for price in listing.auto_paging_iter():
        _price_pull(price, report)


def plan_pull(*, product: Mapping[str, Any]) -> Plan | None:
    """Create or update the plan of a Stripe Product (the whole current object).

    A Stripe-owned plan takes the Product's fields and metadata; an admin plan is only linked
    (see the module docstring). A plan made now also pulls the Product's existing prices.
    Returns None when the Product cannot be a plan (logged). Raises stripe.StripeError.
    """
    report = _Report()
    with transaction.atomic():
        plan, created = _product_pull(product, report)
        if plan is not None and created:
            _pull_new_plan_prices(plan, report)
    return plan


def plan_price_pull(*, price: Mapping[str, Any]) -> PlanPrice | None:
    """Create or update the PlanPrice of a Stripe Price (the whole current object, tiers
    expanded). A Price whose Product has no plan yet pulls the Product first.

    Returns None for what is not pulled (one-time, unsupported, superseded admin prices;
    logged). Raises stripe.StripeError.
    """
    report = _Report()

    def plan_for(product_id: str) -> Plan | None:
        product = price["product"] if isinstance(price["product"], Mapping) else None
        product = product or _product_retrieve(product_id)
        return _product_pull(product, report)[0] if product is not None else None

    with transaction.atomic():
        return _price_pull(price, report, plan_for=plan_for)


def plan_pull_current(*, product_id: str) -> Plan | None:
    """`plan_pull` on the Product as dj-stripe's mirror holds it now (a webhook's receiver:
    dj-stripe re-retrieved it for this event, so an older event cannot roll it back)."""
    mirrored = djstripe_models.Product.objects.filter(id=product_id).first()
    if mirrored is None:
        return None  # gone from Stripe since; its product.deleted event archives the plan
    return plan_pull(product=mirrored.stripe_data)


def plan_price_pull_current(*, price_id: str) -> PlanPrice | None:
    """`plan_price_pull` on the Price as dj-stripe's mirror holds it now (see above)."""
    mirrored = djstripe_models.Price.objects.filter(id=price_id).first()
    if mirrored is None:
        return None
    return plan_price_pull(price=mirrored.stripe_data)


def plan_pull_deleted(*, product_id: str) -> Plan | None:
    """A Product deleted in Stripe: its plan (whoever made it) is archived and its
    Stripe-owned prices deactivated. Existing subscriptions are Stripe's business."""
    with transaction.atomic():
        plan = Plan.objects.select_for_update().filter(stripe_product_id=product_id).first()
        if plan is None:
            return None
        _save_changes(plan, {"is_archived": True})
        plan.prices.filter(source=Source.STRIPE, active=True).update(
            active=False, updated_at=timezone.now()
        )
    return plan


def plan_price_pull_deleted(*, price_id: str) -> PlanPrice | None:
    """A Price deleted in Stripe: its PlanPrice (whoever made it) is deactivated."""
    with transaction.atomic():
        row = PlanPrice.objects.select_for_update().filter(stripe_price_id=price_id).first()
        if row is not None:
            _save_changes(row, {"active": False})
    return row


def stripe_catalog_sync() -> CatalogSyncResult:
    """Pull every Product and Price from Stripe into dj-stripe's mirror and into our catalog.

    Products become or update plans and recurring Prices become or update PlanPrices (see the
    module docstring for who owns what); admin plans are only linked (a Product by
    `metadata[plan]` = slug, a Price by lookup key: the current one after a re-price).
    Stripe-owned plans and prices that Stripe no longer lists (deleted) stop selling.
    Idempotent: a second run changes nothing. Raises stripe.StripeError.
    """
    products: list[Any] = list(
        stripe.Product.list(limit=100, api_key=stripe_api_key()).auto_paging_iter()
    )
    prices: list[Any] = list(
        stripe.Price.list(
            limit=100, expand=["data.tiers"], api_key=stripe_api_key()
        ).auto_paging_iter()
    )
    products.sort(key=lambda p: (p.get("created") or 0, p["id"]))
    prices.sort(key=lambda p: (p.get("created") or 0, p["id"]))
    report = _Report()
    with transaction.atomic():
        for product in products:
            djstripe_models.Product.sync_from_stripe_data(product, api_key=stripe_api_key())
        for obj in prices:
            djstripe_models.Price.sync_from_stripe_data(obj, api_key=stripe_api_key())
        for product in products:
            _product_pull(product, report)
        for obj in prices:
            _price_pull(obj, report)

        listed_products = {str(p["id"]) for p in products}
        gone_plans = Plan.objects.select_for_update().filter(
            source=Source.STRIPE, is_archived=False
        )
        for plan in gone_plans.order_by("pk"):
            if plan.stripe_product_id not in listed_products:
                plan_pull_deleted(product_id=plan.stripe_product_id)
                report.add("deactivated")
        listed_prices = {str(p["id"]) for p in prices}
        gone_prices = PlanPrice.objects.select_for_update().filter(
            source=Source.STRIPE, active=True
        )
        for row in gone_prices.order_by("pk"):
            if row.stripe_price_id not in listed_prices:
                _save_changes(row, {"active": False})
                report.add("deactivated")
    counts = report.counts
    return CatalogSyncResult(
        products=len(products),
        prices=len(prices),
        plans_created=counts.get("plans_created", 0),
        plans_updated=counts.get("plans_updated", 0),
        plans_linked=counts.get("plans_linked", 0),
        prices_created=counts.get("prices_created", 0),
        prices_updated=counts.get("prices_updated", 0),
        prices_linked=counts.get("prices_linked", 0),
        deactivated=counts.get("deactivated", 0),
        one_time_skipped=counts.get("one_time_skipped", 0),
        refused=tuple(report.refused),
    )
