"""Catalog writes: push our admin's Plans/PlanPrices to Stripe Products/Prices, archive.
(Pulling a catalog that starts in Stripe is catalog_pull.py.)

Stripe Prices are immutable in everything that decides an amount (currency, interval,
unit amount, tiers): pushing a changed PlanPrice creates a new Stripe Price, moves the
lookup key to it (`transfer_lookup_key`) and deactivates the old one, which keeps billing
the subscriptions already on it. Nothing is ever deleted.

Idempotency keys derive from our row pks plus a digest of what is sent, so a retried push
replays Stripe's earlier answer instead of creating a twin.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import stripe
from django.core.exceptions import ValidationError
from django.db import transaction
from djstripe import models as djstripe_models

from revenue_site.stripe_setup import stripe_api_key
from subscriptions.models import Plan, PlanPrice
from subscriptions.pricing import tiers_normalised


class CatalogError(Exception):
    """The plan cannot be pushed as it stands (e.g. a price without amount or tiers)."""


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def product_id_for(plan: Plan) -> str:
    """The Stripe Product id a plan gets on its first push (stable: derived from the pk)."""
    return plan.stripe_product_id or f"prod_plan_{plan.pk}"


def _check_complete(price: PlanPrice) -> None:
    """The model's rule for a complete price (amount or valid tiers), as a CatalogError: rows
    written around the admin form (older rows, the shell) are refused here, not by Stripe."""
    try:
        price.clean()
    except ValidationError as exc:
        raise CatalogError(f"price {price.lookup_key}: {' '.join(exc.messages)}") from None


def _price_terms(price: PlanPrice) -> dict[str, Any]:
    """What decides a price's amount: a change here needs a new Stripe Price."""
    terms: dict[str, Any] = {
        "currency": price.currency.lower(),
        "interval": price.interval,
        "interval_count": price.interval_count,
        "usage_type": price.usage_type,
        "billing_scheme": price.billing_scheme,
    }
    if price.billing_scheme == PlanPrice.BillingScheme.TIERED:
        terms["tiers_mode"] = price.tiers_mode
        terms["tiers"] = tiers_normalised(price.tiers)
    else:
        terms["unit_amount"] = price.unit_amount
    return terms


def _stripe_terms(obj: Any) -> dict[str, Any]:
    recurring = obj.get("recurring") or {}
    terms: dict[str, Any] = {
        "currency": obj.get("currency"),
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "usage_type": recurring.get("usage_type"),
        "billing_scheme": obj.get("billing_scheme"),
    }
    if obj.get("billing_scheme") == "tiered":
        terms["tiers_mode"] = obj.get("tiers_mode")
        terms["tiers"] = tiers_normalised(obj.get("tiers"))
    else:
        terms["unit_amount"] = obj.get("unit_amount")
    return terms


def _create_params(price: PlanPrice, terms: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "currency": terms["currency"],
        "recurring": {
            "interval": terms["interval"],
            "interval_count": terms["interval_count"],
            "usage_type": terms["usage_type"],
        },
        "billing_scheme": terms["billing_scheme"],
        "lookup_key": price.lookup_key,
        "transfer_lookup_key": True,
        "nickname": price.nickname or price.lookup_key,
        "metadata": {"plan_price": str(price.pk), "plan": price.plan.slug},
    }
    if terms["billing_scheme"] == PlanPrice.BillingScheme.TIERED:
        params["tiers_mode"] = terms["tiers_mode"]
        params["tiers"] = [
            {
                "up_to": "inf" if t["up_to"] is None else t["up_to"],
                "unit_amount": t["unit_amount"],
                "flat_amount": t["flat_amount"],
            }
            for t in terms["tiers"]
        ]
    else:
        params["unit_amount"] = terms["unit_amount"]
    return params


def _retrieve_price(price_id: str) -> Any | None:
    try:
        return stripe.Price.retrieve(price_id, expand=["tiers"], api_key=stripe_api_key())
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise


def _price_by_lookup_key(lookup_key: str) -> Any | None:
    found = stripe.Price.list(
        lookup_keys=[lookup_key], expand=["data.tiers"], limit=1, api_key=stripe_api_key()
    )
    return found.data[0] if found.data else None


def _set_active(price: PlanPrice, stripe_price: Any, active: bool) -> Any:
    if bool(stripe_price.get("active")) == active:
        return stripe_price
    return stripe.Price.modify(
        stripe_price["id"],
        active=active,
        api_key=stripe_api_key(),
        idempotency_key=f"planprice-{price.pk}-{stripe_price['id']}-active-{int(active)}",
    )


def _push_price(price: PlanPrice, *, product_id: str, plan_live: bool) -> list[Any]:
    """Make Stripe hold `price`; returns every Stripe Price touched (for the mirror)."""
    _check_complete(price)
    terms = _price_terms(price)
    wanted_active = price.active and plan_live
    current = _retrieve_price(price.stripe_price_id) if price.stripe_price_id else None
    if current is None:
        # Not linked yet (or linked to a price Stripe forgot): adopt the lookup key's holder
        # when it already has these terms, e.g. after a push whose reply we lost.
        holder = _price_by_lookup_key(price.lookup_key)
        if holder is not None and holder.get("product") == product_id:
            current = holder
    touched = []
    if current is not None and _stripe_terms(current) == terms:
        updates: dict[str, Any] = {}
        if current.get("lookup_key") != price.lookup_key:
            updates.update(lookup_key=price.lookup_key, transfer_lookup_key=True)
        nickname = price.nickname or price.lookup_key
        if current.get("nickname") != nickname:
            updates["nickname"] = nickname
        if bool(current.get("active")) != wanted_active:
            updates["active"] = wanted_active
        if updates:
            current = stripe.Price.modify(
                current["id"],
                **updates,
                api_key=stripe_api_key(),
                idempotency_key=f"planprice-{price.pk}-{current['id']}-update-{_digest(updates)}",
            )
        touched.append(current)
    else:
        params = _create_params(price, terms)
        params["active"] = wanted_active
        new = stripe.Price.create(
            product=product_id,
            **params,
            api_key=stripe_api_key(),
            idempotency_key=f"planprice-{price.pk}-create-{_digest(params)}",
        )
        touched.append(new)
        if current is not None:
            # The old price keeps billing its subscribers; it just cannot be chosen anymore.
            touched.append(_set_active(price, current, False))
        current = new
    if price.stripe_price_id != current["id"]:
        price.stripe_price_id = current["id"]
        price.save(update_fields=["stripe_price_id", "updated_at"])
    return touched


def _mirror(product: Any, prices: list[Any]) -> None:
    djstripe_models.Product.sync_from_stripe_data(product, api_key=stripe_api_key())
    for obj in prices:
        djstripe_models.Price.sync_from_stripe_data(obj, api_key=stripe_api_key())


def plan_push_to_stripe(*, plan: Plan) -> Plan:
    """Create or update the plan's Stripe Product and each of its prices' Stripe Prices,
    store the Stripe ids on our rows and sync everything into dj-stripe's mirror.

    Pushing an unchanged plan creates nothing. A price whose amount, tiers, currency or
    interval changed gets a new Stripe Price (the lookup key moves to it) and the old one is
    deactivated. Runs under a row lock on the plan so two pushes do not race.
    Only our admin's plans and prices are pushed: a plan pulled from Stripe is edited there
    (CatalogError), and a price made in Stripe on an admin plan's product is left as it is.
    Raises CatalogError (incomplete price, plan made in Stripe), stripe.StripeError.
    """
    with transaction.atomic():
        plan = Plan.objects.select_for_update().get(pk=plan.pk)
        if plan.source == Plan.Source.STRIPE:
            raise CatalogError(f"plan {plan.slug} is made in Stripe: edit it there")
        product_id = product_id_for(plan)
        product_fields: dict[str, Any] = {
            "name": plan.name,
            "description": plan.description or None,
            "active": not plan.is_archived,
            "metadata": {"plan": plan.slug, "plan_id": str(plan.pk)},
        }
        try:
            product: Any = stripe.Product.retrieve(product_id, api_key=stripe_api_key())
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
            product = stripe.Product.create(
                id=product_id,
                **product_fields,
                api_key=stripe_api_key(),
                idempotency_key=f"plan-{plan.pk}-product-create",
            )
        else:
            changed: dict[str, Any] = {
                key: value
                for key, value in product_fields.items()
                if key != "metadata" and product.get(key) != value
            }
            if any(
                product.get("metadata", {}).get(k) != v
                for k, v in product_fields["metadata"].items()
            ):
                changed["metadata"] = product_fields["metadata"]
            if changed:
                product = stripe.Product.modify(
                    product_id,
                    **changed,
                    api_key=stripe_api_key(),
                    idempotency_key=f"plan-{plan.pk}-product-update-{_digest(changed)}",
                )
        if plan.stripe_product_id != product_id:
            plan.stripe_product_id = product_id
            plan.save(update_fields=["stripe_product_id", "updated_at"])
        touched: list[Any] = []
        prices = plan.prices.filter(source=PlanPrice.Source.ADMIN).select_related("plan")
        for price in prices.order_by("pk"):
            touched.extend(
                _push_price(price, product_id=product_id, plan_live=not plan.is_archived)
            )
        _mirror(product, touched)
    return plan


def plan_archive(*, plan: Plan) -> Plan:
    """Deactivate the plan's Stripe Prices and Product and mark the plan archived.

    Existing subscriptions keep billing on their (now inactive) prices; nothing is deleted.
    New subscribes are refused (inactive price) and the public catalog hides the plan.
    """
    with transaction.atomic():
        plan = Plan.objects.select_for_update().get(pk=plan.pk)
        touched = []
        for price in plan.prices.exclude(stripe_price_id="").order_by("pk"):
            current = _retrieve_price(price.stripe_price_id)
            if current is not None:
                touched.append(_set_active(price, current, False))
        product = None
        if plan.stripe_product_id:
            product = stripe.Product.modify(
                plan.stripe_product_id,
                active=False,
                api_key=stripe_api_key(),
                idempotency_key=f"plan-{plan.pk}-archive",
            )
        if not plan.is_archived:
            plan.is_archived = True
            plan.save(update_fields=["is_archived", "updated_at"])
        if product is not None:
            _mirror(product, touched)
    return plan
