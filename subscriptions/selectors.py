"""Reads for the catalog and the customer API. Query shapes are decided here.

Customer-scoped selectors filter through dj-stripe's `Customer.subscriber`, so a customer
only ever sees objects of its own Stripe Customer; an id that belongs to someone else is
indistinguishable from one that does not exist (Http404).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Prefetch, QuerySet
from django.http import Http404
from djstripe import models as djstripe_models

from subscriptions.models import Plan, PlanPrice

# Subscriptions whose plan limits apply (a past-due customer keeps access while dunning runs).
ENTITLED_STATUSES = ("active", "trialing", "past_due")


def plan_list_public() -> QuerySet[Plan]:
    """Plans on sale with their active, pushed prices (two queries whatever the size)."""
    prices = (
        PlanPrice.objects.filter(active=True)
        .exclude(stripe_price_id="")
        .order_by("currency", "interval", "pk")
    )
    return (
        Plan.objects.filter(is_archived=False)
        .prefetch_related(Prefetch("prices", queryset=prices))
        .order_by("tier_rank", "name")
    )


def plan_list_admin() -> QuerySet[Plan]:
    """The staff changelist: every plan with its number of prices (one query)."""
    return Plan.objects.annotate(price_count=Count("prices"))


def customer_subscription_list(*, user: Any) -> QuerySet[djstripe_models.Subscription]:
    return (
        djstripe_models.Subscription.objects.filter(customer__subscriber=user)
        .select_related("customer")
        .order_by("-created", "-djstripe_id")
    )


def customer_subscription_get(*, user: Any, subscription_id: str) -> djstripe_models.Subscription:
    """The user's subscription `subscription_id`; Http404 if missing or someone else's."""
    subscription = customer_subscription_list(user=user).filter(id=subscription_id).first()
    if subscription is None:
        raise Http404("No such subscription.")
    return subscription


def customer_invoice_list(*, user: Any) -> QuerySet[djstripe_models.Invoice]:
    return djstripe_models.Invoice.objects.filter(customer__subscriber=user).order_by(
        "-created", "-djstripe_id"
    )


@dataclass(frozen=True)
class Entitlements:
    """Effective limits; `None` means unlimited. `plans` are the slugs they come from."""

    seats: int | None = 0
    api_calls_per_month: int | None = 0
    features: dict[str, bool] = field(default_factory=dict)
    plans: list[str] = field(default_factory=list)


def _best(current: int | None, candidate: int | None) -> int | None:
    if current is None or candidate is None:
        return None
    return max(current, candidate)


def customer_entitlements(*, user: Any) -> Entitlements:
    """The limits of the customer's current plans (active, trialing or past-due subscriptions).

    Limits are the best across plans, not a sum: holding two plans (say the old and new one
    while an upgrade settles, or a team plan plus an add-on) grants the larger seat count and
    API quota, not both stacked; unlimited (null) wins. A feature is on if any plan has it.
    Plans are found through the subscription items' Stripe product, so a subscription on a
    price that was since re-priced still maps to its plan. No plan → zero limits.
    """
    product_ids: set[str] = set()
    subscriptions = customer_subscription_list(user=user).filter(
        stripe_data__status__in=ENTITLED_STATUSES
    )
    for subscription in subscriptions:
        for item in (subscription.stripe_data.get("items") or {}).get("data", []):
            product = (item.get("price") or {}).get("product")
            if isinstance(product, dict):
                product = product.get("id")
            if product:
                product_ids.add(product)
    plans = list(Plan.objects.filter(stripe_product_id__in=product_ids).order_by("tier_rank"))
    if not plans:
        return Entitlements()
    seats: int | None = 0
    api_calls: int | None = 0
    features: dict[str, bool] = {}
    for plan in plans:
        seats = _best(seats, plan.seats)
        api_calls = _best(api_calls, plan.api_calls_per_month)
        for name, enabled in (plan.features or {}).items():
            features[name] = bool(features.get(name)) or bool(enabled)
    return Entitlements(
        seats=seats,
        api_calls_per_month=api_calls,
        features=features,
        plans=[plan.slug for plan in plans],
    )
