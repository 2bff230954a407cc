"""Factories for our catalog rows (Stripe objects are created through the fake, not here)."""

from __future__ import annotations

import factory

from subscriptions.models import Plan, PlanPrice


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan

    name = factory.Sequence(lambda n: f"Plan {n}")
    slug = factory.Sequence(lambda n: f"plan-{n}")
    description = "A plan."
    tier_rank = factory.Sequence(lambda n: n)
    seats = 5
    api_calls_per_month = 10_000
    features = factory.LazyFunction(lambda: {"sso": False, "audit_log": False})


class PlanPriceFactory(factory.django.DjangoModelFactory):
    """A per-unit monthly USD price; `PlanPriceFactory(tiered=True)` gives graduated tiers."""

    class Meta:
        model = PlanPrice

    class Params:
        tiered = factory.Trait(
            billing_scheme=PlanPrice.BillingScheme.TIERED,
            unit_amount=None,
            tiers_mode=PlanPrice.TiersMode.GRADUATED,
            tiers=factory.LazyFunction(
                lambda: [
                    {"up_to": 5, "unit_amount": 1500, "flat_amount": 0},
                    {"up_to": None, "unit_amount": 1000, "flat_amount": 0},
                ]
            ),
        )
        yearly = factory.Trait(interval=PlanPrice.Interval.YEAR)

    plan = factory.SubFactory(PlanFactory)
    lookup_key = factory.Sequence(lambda n: f"price-{n}")
    currency = "usd"
    interval = PlanPrice.Interval.MONTH
    billing_scheme = PlanPrice.BillingScheme.PER_UNIT
    unit_amount = 1000
    tiers_mode = PlanPrice.TiersMode.NONE
    tiers = factory.LazyFunction(list)
