"""Demo API billing: meters, a pay-as-you-go API plan (the default), API customers with keys
and three weeks of usage, and last month's periods closed through Stripe (the local fake).

Runs after the subscriptions demo (ORDER 20): Ada (Starter, 10k API calls a month) and Alan
(Team, 250k) report usage, so their plan's allowance is free and the rest is overage; Devon is
an API-only customer without a subscription. Idempotent: meters, plans and charges are found
by code, keys are made once per customer (and printed only then: a key is never shown
again), and each event's id names its customer, meter and hour, so a second run stores
nothing twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.models import User
from marketplace import period_close, services, usage_store
from marketplace.models import (
    API_CALLS,
    ApiKey,
    ApiPlan,
    ApiPlanCharge,
    Meter,
    UsagePeriodClose,
    month_bounds,
)
from subscriptions.services.billing import billing_customer_ensure

ORDER = 40

DAYS = 21
METERS = [
    # code, name, unit, aggregation, property
    ("tokens", "Tokens", "token", Meter.Aggregation.SUM, ""),
    ("storage_gb", "Storage", "GB", Meter.Aggregation.MAX, ""),
    ("active_users", "Active users", "user", Meter.Aggregation.UNIQUE_COUNT, "user"),
]
CHARGES: dict[str, dict[str, object]] = {
    # 0.1¢ a call for the first million past the allowance, then 0.05¢.
    API_CALLS: {
        "price_model": ApiPlanCharge.PriceModel.GRADUATED,
        "tiers": [
            {"up_to": 1_000_000, "unit_amount_decimal": "0.1"},
            {"up_to": None, "unit_amount_decimal": "0.05"},
        ],
    },
    "tokens": {
        "price_model": ApiPlanCharge.PriceModel.PACKAGE,
        "package_size": 1000,
        "package_amount": Decimal(2),
        "free_units": Decimal(10_000),
    },
    "storage_gb": {
        "price_model": ApiPlanCharge.PriceModel.VOLUME,
        "tiers": [{"up_to": 100, "unit_amount": 25}, {"up_to": None, "unit_amount": 15}],
    },
    "active_users": {"price_model": ApiPlanCharge.PriceModel.PER_UNIT, "unit_amount": 50},
}
# email, name, calls per hour (mean)
CUSTOMERS = [
    ("ada@demo.example", "Ada Lovelace", 40),
    ("alan@demo.example", "Alan Turing", 600),
    ("devon@api.demo.example", "Devon API-only", 120),
]


def _catalog() -> ApiPlan:
    meters = {API_CALLS: services.meter_api_calls_ensure()}
    for code, name, unit, aggregation, prop in METERS:
        meters[code], _ = Meter.objects.get_or_create(
            code=code,
            defaults={"name": name, "unit": unit, "aggregation": aggregation, "property": prop},
        )
    plan, _ = ApiPlan.objects.get_or_create(
        code="payg",
        defaults={
            "name": "Pay as you go",
            "currency": "usd",
            "is_default": not ApiPlan.objects.filter(is_default=True).exists(),
            "description": "Usage past your subscription's allowance, billed monthly.",
        },
    )
    for code, fields in CHARGES.items():
        charge = ApiPlanCharge.objects.filter(plan=plan, meter=meters[code]).first()
        if charge is None:
            charge = ApiPlanCharge(plan=plan, meter=meters[code], **fields)
            charge.full_clean()
            charge.save()
    return plan


def _events(user: User, per_hour: int, rng: random.Random) -> list[usage_store.NewEvent]:
    """One event per meter and hour over the last DAYS days (ids name the hour)."""
    now = timezone.now()
    first = (now - timedelta(days=DAYS)).replace(minute=0, second=0, microsecond=0)
    raw = []
    hour = first
    while hour < now - timedelta(hours=1):
        daytime = 8 <= hour.hour < 20
        calls = max(0, int(rng.gauss(per_hour * (1.6 if daytime else 0.4), per_hour / 5)))
        at = (hour + timedelta(minutes=rng.randrange(60))).isoformat()
        tag = f"{hour:%Y%m%dT%H}"
        raw += [
            {"id": f"demo-calls-{tag}", "metric": API_CALLS, "quantity": calls, "timestamp": at},
            {
                "id": f"demo-tokens-{tag}",
                "metric": "tokens",
                "quantity": calls * 35,
                "timestamp": at,
            },
            {
                "id": f"demo-storage-{tag}",
                "metric": "storage_gb",
                "quantity": 20 + (hour - first).days * 3,
                "timestamp": at,
            },
            {
                "id": f"demo-user-{tag}",
                "metric": "active_users",
                "quantity": 1,
                "timestamp": at,
                "properties": {"user": f"u{rng.randrange(max(3, per_hour // 10))}"},
            },
        ]
        hour += timedelta(hours=1)
    return [
        event
        for start in range(0, len(raw), services.MAX_EVENTS_PER_BATCH)
        for event in services.usage_batch_parse(
            payload={"events": raw[start : start + services.MAX_EVENTS_PER_BATCH]}
        )
    ]


def seed(*, out: Callable[[str], None]) -> None:
    plan = _catalog()
    rng = random.Random(42)  # noqa: S311 (demo data, not security)
    accepted = 0
    for email, name, per_hour in CUSTOMERS:
        user, created = User.objects.get_or_create(email=email, defaults={"name": name})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        # Every API customer is a Stripe customer from the start (their usage is invoiced).
        billing_customer_ensure(user=user)
        if not ApiKey.objects.filter(user=user).exists():
            new = services.api_key_create(user=user, name="demo")
            out(f"  API key for {email} (shown once): {new.key}")
        closed = set(
            UsagePeriodClose.objects.filter(customer=user)
            .exclude(status=UsagePeriodClose.Status.RATING)
            .values_list("period_start", flat=True)
        )
        events = [
            e for e in _events(user, per_hour, rng) if month_bounds(e.timestamp)[0] not in closed
        ]
        for start in range(0, len(events), services.MAX_EVENTS_PER_BATCH):
            batch = events[start : start + services.MAX_EVENTS_PER_BATCH]
            accepted += services.usage_events_record(customer=user, events=batch).accepted
    sweep = period_close.usage_periods_close_due()
    out(
        f"  usage: plan {plan.code} (default), {len(CUSTOMERS)} API customers, "
        f"{accepted} new events; last month's periods closed: {sweep.closed} invoiced, "
        f"{sweep.nothing_to_bill} with nothing to bill, {sweep.failed} to retry"
    )
