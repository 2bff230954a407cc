"""API billing reads: API keys (for their owner, for authentication, for the admin), meters,
stored events and usage summaries (from the rollups, through `usage_store`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import User
from marketplace import rating, usage_store
from marketplace.models import (
    API_CALLS,
    ApiKey,
    ApiPlan,
    ApiPlanCharge,
    CustomerApiPlan,
    Meter,
    UsageEvent,
    UsagePeriodClose,
    month_bounds,
)
from subscriptions.selectors import customer_entitlements, customer_subscription_list


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    """A customer's own keys, newest first (revoked ones included, marked)."""
    return ApiKey.objects.filter(user=user).order_by("-created_at", "-pk")


def api_key_get(*, user: User, api_key_id: int) -> ApiKey:
    """A customer's own key; anyone else's is a 404."""
    api_key = ApiKey.objects.filter(user=user, pk=api_key_id).first()
    if api_key is None:
        raise Http404
    return api_key


def api_key_for_hash(*, secret_hash: str) -> ApiKey | None:
    """The key with this hash and its user, read from the database on every request: a
    revocation is seen at once by every process."""
    return ApiKey.objects.select_related("user").filter(secret_hash=secret_hash).first()


def api_key_list_for_admin() -> QuerySet[ApiKey]:
    return ApiKey.objects.select_related("user")


def meter_list_for_admin() -> QuerySet[Meter]:
    return Meter.objects.all()


def meter_get_active(*, code: str) -> Meter | None:
    return Meter.objects.filter(code=code, is_active=True).first()


@dataclass(frozen=True)
class StoredEvent:
    event: UsageEvent
    period_start: datetime
    period_end: datetime


def usage_event_get(*, customer: User, event_id: str) -> StoredEvent:
    """A customer's stored event and the billing period (calendar month, UTC) it counts in;
    another customer's id, or one never stored, is a 404."""
    event = usage_store.event_get(customer_id=customer.pk, event_id=event_id)
    if event is None:
        raise Http404
    start, end = month_bounds(event.timestamp)
    return StoredEvent(event=event, period_start=start, period_end=end)


@dataclass(frozen=True)
class Bucket:
    start: datetime
    value: Decimal


@dataclass(frozen=True)
class UsageSummary:
    meter: Meter
    start: datetime
    end: datetime
    group_by: str
    value: Decimal
    buckets: list[Bucket] = field(default_factory=list)


def _aggregate(meter: Meter, rows: list[usage_store.HourRollup]) -> Decimal:
    if not rows:
        return Decimal(0)
    match meter.aggregation:
        case Meter.Aggregation.COUNT:
            return Decimal(sum(row.count for row in rows))
        case Meter.Aggregation.SUM:
            return sum((row.sum for row in rows), Decimal(0))
        case Meter.Aggregation.MAX:
            return max(row.max for row in rows)
        case _:  # latest: the value of the newest event
            return max(rows, key=lambda row: row.latest_at).latest


def usage_summary(
    *, customer: User, meter: Meter, start: datetime, end: datetime, group_by: str
) -> UsageSummary:
    """A customer's usage of one meter over the hours (UTC) that start in [start, end), in
    total and per day or hour, aggregated as the meter says (a count, a sum, a maximum, the
    number of distinct values, or the latest value). Read from the hourly rollups only, never
    from raw events, so its cost depends on the range, not on the traffic.

    Usage only: what it costs is `usage_charge`."""
    if meter.aggregation == Meter.Aggregation.UNIQUE_COUNT:
        total, per_bucket = usage_store.distinct_counts(
            customer_id=customer.pk, meter=meter, start=start, end=end, group_by=group_by
        )
        buckets = [Bucket(start=at, value=Decimal(n)) for at, n in sorted(per_bucket.items())]
        return UsageSummary(meter, start, end, group_by, Decimal(total), buckets)
    rows = usage_store.rollups_read(customer_id=customer.pk, meter=meter, start=start, end=end)
    grouped: dict[datetime, list[usage_store.HourRollup]] = {}
    for row in rows:
        bucket = row.hour if group_by == "hour" else row.hour.replace(hour=0)
        grouped.setdefault(bucket, []).append(row)
    buckets = [Bucket(start=at, value=_aggregate(meter, group)) for at, group in grouped.items()]
    return UsageSummary(meter, start, end, group_by, _aggregate(meter, rows), buckets)


# --- prices ---------------------------------------------------------------------------------


def api_plan_for_customer(*, customer: User) -> ApiPlan | None:
    """The plan a customer is rated on: their own, else the default plan, else None (usage
    recorded, not charged)."""
    own = CustomerApiPlan.objects.select_related("plan").filter(customer=customer).first()
    if own is not None:
        return own.plan
    return ApiPlan.objects.filter(is_default=True).first()


@dataclass(frozen=True)
class UsageCharge:
    """What a customer's usage of one meter costs in one period so far: the usage, the free
    units (the plan's charge plus, on `api_calls`, the subscription plan's "API calls per
    month"; None: unlimited), and the rating (lines add up to the amount)."""

    meter: Meter
    plan: ApiPlan
    charge: ApiPlanCharge
    period_start: datetime
    period_end: datetime
    quantity: Decimal
    free_units: Decimal | None
    rating: rating.Rating


def _plan_charges(plan: ApiPlan) -> dict[int, ApiPlanCharge]:
    return {charge.meter_id: charge for charge in plan.charges.select_related("meter")}


def _entitled_calls(customer: User) -> Decimal | None:
    """The subscription plans' API calls per month (the best across plans; None: unlimited)."""
    calls = customer_entitlements(user=customer).api_calls_per_month
    return None if calls is None else Decimal(calls)


def _charge_rate(
    *,
    customer: User,
    plan: ApiPlan,
    charge: ApiPlanCharge,
    start: datetime,
    end: datetime,
    entitled: Decimal | None,
    summary: UsageSummary | None = None,
) -> UsageCharge:
    if summary is None or (summary.start, summary.end) != (start, end):
        summary = usage_summary(
            customer=customer, meter=charge.meter, start=start, end=end, group_by="day"
        )
    extra = Decimal(0)
    free: Decimal | None = Decimal(charge.free_units)
    if charge.meter.code == API_CALLS and entitled is None:
        extra, free = summary.value, None  # unlimited calls on the subscription: all free
    elif charge.meter.code == API_CALLS and entitled is not None:
        extra = entitled
        free = Decimal(charge.free_units) + entitled
    priced = rating.rate(
        charge.price(currency=plan.currency, extra_free_units=extra), summary.value
    )
    return UsageCharge(charge.meter, plan, charge, start, end, summary.value, free, priced)


def usage_charge(
    *,
    customer: User,
    meter: Meter,
    at: datetime,
    plan: ApiPlan | None = None,
    summary: UsageSummary | None = None,
) -> UsageCharge | None:
    """The charge so far for `meter` in the period (calendar month, UTC) containing `at`, on
    the customer's plan (or `plan`); None when that plan does not price the meter. A
    `summary` of exactly that period is used instead of reading the rollups again."""
    plan = plan or api_plan_for_customer(customer=customer)
    if plan is None:
        return None
    charge = _plan_charges(plan).get(meter.pk)
    if charge is None:
        return None
    start, end = month_bounds(at)
    entitled = _entitled_calls(customer) if meter.code == API_CALLS else Decimal(0)
    return _charge_rate(
        customer=customer,
        plan=plan,
        charge=charge,
        start=start,
        end=end,
        entitled=entitled,
        summary=summary,
    )


def usage_charges_for_period(
    *, customer: User, plan: ApiPlan, start: datetime, end: datetime
) -> list[UsageCharge]:
    """Every meter the plan prices, rated for the customer over [start, end), by meter code
    (the period close's lines; zero-usage meters included, with amount 0)."""
    charges = sorted(_plan_charges(plan).values(), key=lambda charge: charge.meter.code)
    entitled = (
        _entitled_calls(customer)
        if any(charge.meter.code == API_CALLS for charge in charges)
        else Decimal(0)
    )
    return [
        _charge_rate(
            customer=customer, plan=plan, charge=charge, start=start, end=end, entitled=entitled
        )
        for charge in charges
    ]


def api_plan_list_for_admin() -> QuerySet[ApiPlan]:
    return ApiPlan.objects.all()


def period_close_list_for_admin() -> QuerySet[UsagePeriodClose]:
    return UsagePeriodClose.objects.select_related("customer", "plan")


def usage_payment_method(*, customer: User, stripe_customer: dict[str, Any] | None) -> str | None:
    """The payment method a usage invoice is charged to: the Stripe customer's invoice default,
    else the one their newest current subscription is charged to; None: neither (the
    invoice waits open for the customer to pay it)."""
    settings_ = (stripe_customer or {}).get("invoice_settings") or {}
    chosen = settings_.get("default_payment_method")
    if chosen:
        return str(chosen if isinstance(chosen, str) else chosen.get("id"))
    for subscription in customer_subscription_list(user=customer).filter(
        stripe_data__status__in=["active", "trialing", "past_due"]
    )[:5]:
        method = subscription.stripe_data.get("default_payment_method")
        if method:
            return str(method if isinstance(method, str) else method.get("id"))
    return None


# --- the staff console's usage explorer ----------------------------------------------------

USAGE_EXPLORER_SUGGESTIONS = 10


def usage_explorer_customer_get(*, email: str) -> User | None:
    """The customer the staff usage explorer shows, by email (case-insensitive, as logins)."""
    return User.objects.filter(email__iexact=email.strip()).first()


def usage_explorer_customer_search(*, text: str) -> list[User]:
    """Customers whose email contains `text`, for the explorer to offer when no email
    matched exactly; at most USAGE_EXPLORER_SUGGESTIONS, by email."""
    text = text.strip()
    if not text:
        return []
    return list(
        User.objects.filter(email__icontains=text).order_by("email")[:USAGE_EXPLORER_SUGGESTIONS]
    )


def usage_explorer_api_key_count(*, customer: User) -> int:
    """How many API keys (revoked ones included) the customer has, for the explorer's link."""
    return ApiKey.objects.filter(user=customer).count()
