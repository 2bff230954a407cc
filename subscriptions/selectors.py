"""Reads for the catalog, the customer API and the staff console's customer list and page,
and what of a charge can still be refunded. Query shapes are decided here.

Customer-scoped selectors filter through dj-stripe's `Customer.subscriber`, so a customer
only ever sees objects of its own Stripe Customer; an id that belongs to someone else is
indistinguishable from one that does not exist (Http404).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import (
    Count,
    Exists,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Replace
from django.http import Http404
from djstripe import models as djstripe_models

from accounts.models import User
from ledger.models import Entry, Transaction
from revenue_site.stripe_payloads import stripe_id
from subscriptions.models import (
    BillingCustomer,
    DunningCase,
    InvoicePayment,
    Plan,
    PlanPrice,
    SubscriptionState,
)
from subscriptions.services.invoice_postings import (
    DISPUTE_SOURCE,
    DISPUTE_WON_SOURCE,
    dispute_key,
    dispute_won_key,
    invoice_paid_key,
)

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


def customer_subscription_list(*, user: User) -> QuerySet[djstripe_models.Subscription]:
    return (
        djstripe_models.Subscription.objects.filter(customer__subscriber=user)
        .select_related("customer")
        .order_by("-created", "-djstripe_id")
    )


def customer_subscription_get(*, user: User, subscription_id: str) -> djstripe_models.Subscription:
    """The user's subscription `subscription_id`; Http404 if missing or someone else's."""
    subscription = customer_subscription_list(user=user).filter(id=subscription_id).first()
    if subscription is None:
        raise Http404("No such subscription.")
    return subscription


def customer_invoice_list(*, user: User) -> QuerySet[djstripe_models.Invoice]:
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


def customer_entitlements(*, user: User) -> Entitlements:
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


# --- the staff console's customer list -----------------------------------------------------


def customer_list_admin() -> QuerySet[BillingCustomer]:
    """Every billing customer with `mrr_total` (the sum of its subscriptions' MRR in minor
    units, None without any) and `past_due` (a past-due subscription or an open dunning
    case): one query, both correlated subqueries on indexed Stripe customer ids."""
    mrr = (
        SubscriptionState.objects.filter(stripe_customer_id=OuterRef("stripe_customer_id"))
        .order_by()
        .values("stripe_customer_id")
        .annotate(total=Sum("mrr"))
        .values("total")[:1]
    )
    past_due = Exists(
        SubscriptionState.objects.filter(
            stripe_customer_id=OuterRef("stripe_customer_id"), status="past_due"
        )
    ) | Exists(
        DunningCase.objects.filter(
            stripe_customer_id=OuterRef("stripe_customer_id"), status=DunningCase.Status.OPEN
        )
    )
    return BillingCustomer.objects.annotate(mrr_total=Subquery(mrr), past_due=past_due)


def stripe_customer_ids_with_status(*, status: str) -> QuerySet[SubscriptionState, Any]:
    """Stripe customer ids with a subscription in `status` (a subquery for `__in`)."""
    return SubscriptionState.objects.filter(status=status).values("stripe_customer_id")


def stripe_customer_ids_on_plan(*, plan_id: int | str) -> QuerySet[Any, Any]:
    """Stripe customer ids with a subscription (not canceled) on one of the plan's prices,
    found through the product, so a re-priced plan still counts (a subquery for `__in`)."""
    product = Plan.objects.filter(pk=plan_id).values("stripe_product_id")
    return (
        djstripe_models.SubscriptionItem.objects.filter(price__product__id__in=product)
        .exclude(subscription__stripe_data__status="canceled")
        .values("subscription__customer__id")
    )


def plan_list_pushed() -> QuerySet[Plan]:
    """Plans that are in Stripe (a product id), in tier order: the customer list's filter."""
    return Plan.objects.exclude(stripe_product_id="").order_by("tier_rank", "name")


def charge_refundable_amount(*, charge: Mapping[str, Any]) -> int:
    """What staff may still refund of a Stripe charge, in minor units: a succeeded charge's
    amount less what was refunded already; 0 for any other charge (failed, pending, refunded
    in full)."""
    if charge.get("status") != "succeeded":
        return 0
    return max(int(charge.get("amount") or 0) - int(charge.get("amount_refunded") or 0), 0)


# --- the staff console's customer page: one query per section, whatever the rows ---

SECTION_LIMIT = 100  # rows per section on the page; older ones are in the mirror's own admin


def customer_ledger_entries(*, invoice_ids: list[str]) -> QuerySet[Entry]:
    """Ledger lines of these invoices: their revenue postings, every reversal of them
    (refunds, disputes), the postings that booked back won disputes and their reversals (a
    refund after a win). One query, transactions and accounts joined; the won postings are
    found by a subquery that maps each dispute reversal's key to its won key."""
    keys = [invoice_paid_key(invoice_id) for invoice_id in invoice_ids]
    won_keys = (
        Transaction.objects.filter(source=DISPUTE_SOURCE, reversal_of__idempotency_key__in=keys)
        .annotate(
            won_key=Replace("idempotency_key", Value(dispute_key("")), Value(dispute_won_key("")))
        )
        .values("won_key")
    )
    return (
        Entry.objects.filter(
            Q(transaction__idempotency_key__in=keys)
            | Q(transaction__reversal_of__idempotency_key__in=keys)
            | Q(transaction__source=DISPUTE_WON_SOURCE, transaction__idempotency_key__in=won_keys)
            | Q(
                transaction__reversal_of__source=DISPUTE_WON_SOURCE,
                transaction__reversal_of__idempotency_key__in=won_keys,
            )
        )
        .select_related("transaction", "account")
        .order_by("posted_at", "transaction_id", "pk")
    )


@dataclass
class CustomerOverview:
    customer: BillingCustomer
    stripe_customer: djstripe_models.Customer | None = None
    subscriptions: list[djstripe_models.Subscription] = field(default_factory=list)
    states: dict[str, SubscriptionState] = field(default_factory=dict)
    invoices: list[djstripe_models.Invoice] = field(default_factory=list)
    charges: list[djstripe_models.Charge] = field(default_factory=list)
    # charge id -> the invoice its payment intent paid (charges name no invoice at our API
    # version; the invoice payment index does)
    charge_invoices: dict[str, str] = field(default_factory=dict)
    # charge id -> what staff may still refund of it (charge_refundable_amount); 0: nothing
    refundable: dict[str, int] = field(default_factory=dict)
    ledger_entries: list[Entry] = field(default_factory=list)
    dunning_cases: list[DunningCase] = field(default_factory=list)

    @property
    def referral_code(self) -> str:
        sources: list[Any] = [self.stripe_customer, *self.subscriptions]
        for obj in sources:
            metadata = (getattr(obj, "stripe_data", None) or {}).get("metadata") or {}
            if metadata.get("referral_code"):
                return str(metadata["referral_code"])
        return ""


def customer_overview(*, customer: BillingCustomer) -> CustomerOverview:
    """Subscriptions, invoices, charges (with the invoice each paid), ledger lines and dunning
    cases of one customer."""
    overview = CustomerOverview(customer=customer)
    cus_id = customer.stripe_customer_id
    if not cus_id:
        return overview
    overview.stripe_customer = djstripe_models.Customer.objects.filter(id=cus_id).first()
    overview.subscriptions = list(
        djstripe_models.Subscription.objects.filter(customer__id=cus_id).order_by("-created")[
            :SECTION_LIMIT
        ]
    )
    overview.states = {
        s.stripe_subscription_id: s
        for s in SubscriptionState.objects.filter(stripe_customer_id=cus_id)[:SECTION_LIMIT]
    }
    overview.invoices = list(
        djstripe_models.Invoice.objects.filter(customer__id=cus_id).order_by("-created")[
            :SECTION_LIMIT
        ]
    )
    overview.charges = list(
        djstripe_models.Charge.objects.filter(customer__id=cus_id).order_by("-created")[
            :SECTION_LIMIT
        ]
    )
    overview.refundable = {
        charge.id: charge_refundable_amount(charge=charge.stripe_data)
        for charge in overview.charges
    }
    intents = {
        charge.id: stripe_id(charge.stripe_data.get("payment_intent"))
        for charge in overview.charges
    }
    paid = dict(
        InvoicePayment.objects.filter(
            stripe_payment_intent_id__in=[pi for pi in intents.values() if pi]
        ).values_list("stripe_payment_intent_id", "stripe_invoice_id")
    )
    overview.charge_invoices = {
        charge_id: paid[pi] for charge_id, pi in intents.items() if pi in paid
    }
    overview.ledger_entries = list(
        customer_ledger_entries(invoice_ids=[i.id for i in overview.invoices])[: SECTION_LIMIT * 4]
    )
    overview.dunning_cases = list(
        DunningCase.objects.filter(stripe_customer_id=cus_id).order_by("status", "-opened_at")[
            :SECTION_LIMIT
        ]
    )
    return overview
