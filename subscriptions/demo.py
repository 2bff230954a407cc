"""Demo catalog and customers, created through our services against Stripe (the local fake
under `make run`) and mirrored by dj-stripe.

Plans and prices are our `Plan`/`PlanPrice` rows pushed with `plan_push_to_stripe`; each demo
customer is a user subscribed with `subscription_create` (then canceled, trialing or made
past-due through the billing services). Idempotent: plans are found by slug, prices by lookup
key, users by email, and a user who already has a subscription is left alone; pushing an
unchanged plan creates nothing in Stripe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accounts.models import User
from subscriptions import selectors
from subscriptions.models import Plan, PlanPrice
from subscriptions.services.billing import (
    subscription_cancel,
    subscription_create,
    subscription_end_trial,
)
from subscriptions.services.catalog import plan_push_to_stripe

ORDER = 20

# slug, name, rank, seats, API calls/month, features, description
PLANS: list[tuple[str, str, int, int | None, int | None, dict[str, bool], str]] = [
    (
        "starter",
        "Starter",
        1,
        1,
        10_000,
        {"sso": False, "audit_log": False},
        "For individuals: 1 seat, 10k API calls a month.",
    ),
    (
        "team",
        "Team",
        2,
        20,
        250_000,
        {"sso": True, "audit_log": False},
        "Per seat, graduated: cheaper seats as the team grows.",
    ),
    (
        "scale",
        "Scale",
        3,
        None,
        None,
        {"sso": True, "audit_log": True},
        "Volume pricing for large organisations, billed yearly.",
    ),
]

PRICES: list[dict[str, Any]] = [
    {"plan": "starter", "lookup_key": "demo_starter_monthly", "unit_amount": 1900},
    {
        "plan": "starter",
        "lookup_key": "demo_starter_yearly",
        "unit_amount": 19000,
        "interval": PlanPrice.Interval.YEAR,
    },
    {
        "plan": "team",
        "lookup_key": "demo_team_seats_monthly",
        "billing_scheme": PlanPrice.BillingScheme.TIERED,
        "tiers_mode": PlanPrice.TiersMode.GRADUATED,
        "tiers": [
            {"up_to": 5, "unit_amount": 1500, "flat_amount": 0},
            {"up_to": 20, "unit_amount": 1200, "flat_amount": 0},
            {"up_to": None, "unit_amount": 900, "flat_amount": 0},
        ],
    },
    {
        "plan": "scale",
        "lookup_key": "demo_scale_seats_yearly",
        "currency": "eur",
        "interval": PlanPrice.Interval.YEAR,
        "billing_scheme": PlanPrice.BillingScheme.TIERED,
        "tiers_mode": PlanPrice.TiersMode.VOLUME,
        "tiers": [
            {"up_to": 50, "unit_amount": 9000, "flat_amount": 50000},
            {"up_to": None, "unit_amount": 7000, "flat_amount": 50000},
        ],
    },
]


@dataclass(frozen=True)
class DemoCustomer:
    email: str
    name: str
    lookup_key: str
    quantity: int
    # active | trialing | canceled | past_due
    state: str = "active"


CUSTOMERS = [
    DemoCustomer("ada@demo.example", "Ada Lovelace", "demo_starter_monthly", 1),
    DemoCustomer("grace@demo.example", "Grace Hopper", "demo_starter_yearly", 1),
    DemoCustomer("alan@demo.example", "Alan Turing", "demo_team_seats_monthly", 8),
    DemoCustomer("edsger@demo.example", "Edsger Dijkstra", "demo_team_seats_monthly", 3),
    DemoCustomer("barbara@demo.example", "Barbara Liskov", "demo_scale_seats_yearly", 60),
    DemoCustomer(
        "katherine@demo.example", "Katherine Johnson", "demo_team_seats_monthly", 5, "trialing"
    ),
    DemoCustomer(
        "margaret@demo.example", "Margaret Hamilton", "demo_starter_monthly", 1, "canceled"
    ),
    DemoCustomer("linus@demo.example", "Linus Pauling", "demo_starter_monthly", 1, "past_due"),
]

TRIAL_DAYS = 14


def _ensure_plans() -> dict[str, PlanPrice]:
    plans = {}
    for slug, name, rank, seats, api_calls, features, description in PLANS:
        plans[slug], _ = Plan.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "tier_rank": rank,
                "seats": seats,
                "api_calls_per_month": api_calls,
                "features": features,
                "description": description,
            },
        )
    prices = {}
    for spec in PRICES:
        fields = {k: v for k, v in spec.items() if k not in ("plan", "lookup_key")}
        prices[spec["lookup_key"]], _ = PlanPrice.objects.get_or_create(
            lookup_key=spec["lookup_key"], defaults={"plan": plans[spec["plan"]], **fields}
        )
    for plan in plans.values():
        plan_push_to_stripe(plan=plan)
    for price in prices.values():
        price.refresh_from_db()
    return prices


def _ensure_subscription(customer: DemoCustomer, price: PlanPrice) -> str:
    user, created = User.objects.get_or_create(
        email=customer.email, defaults={"name": customer.name}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    existing = selectors.customer_subscription_list(user=user).first()
    if existing is not None:
        return str(existing.status)
    past_due = customer.state == "past_due"
    subscription = subscription_create(
        user=user,
        price_id=price.stripe_price_id,
        quantity=customer.quantity,
        # Demo customers live on real time, not a test clock: a past-due customer is a trial
        # ended at once (below) whose conversion payment is declined, as when a card fails.
        payment_method_id="pm_card_chargeCustomerFail" if past_due else "pm_card_visa",
        trial_days=TRIAL_DAYS if customer.state in ("trialing", "past_due") else 0,
    )
    if customer.state == "canceled":
        subscription = subscription_cancel(subscription_id=subscription.id, at_period_end=False)
    elif past_due:
        subscription = subscription_end_trial(subscription_id=subscription.id)
    return str(subscription.status)


def seed(*, out: Callable[[str], None]) -> None:
    prices = _ensure_plans()
    statuses = [_ensure_subscription(c, prices[c.lookup_key]) for c in CUSTOMERS]
    summary = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
    out(f"  stripe: {len(PLANS)} plans, {len(PRICES)} prices, subscriptions: {summary}")
