"""Reads for the staff console's customer page: everything about one billing customer in a
fixed number of queries (one per section), whatever the number of rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet
from djstripe import models as djm

from ledger.models import Entry
from subscriptions.models import BillingCustomer, DunningCase, SubscriptionState
from subscriptions.services.effects import invoice_paid_key

SECTION_LIMIT = 100  # rows per section on the page; older ones are in the mirror's own admin


def customer_ledger_entries(*, invoice_ids: list[str]) -> QuerySet[Entry]:
    """Ledger lines of these invoices: their revenue postings and every reversal of them
    (refunds, disputes). One query, transactions and accounts joined."""
    keys = [invoice_paid_key(invoice_id) for invoice_id in invoice_ids]
    return (
        Entry.objects.filter(
            Q(transaction__idempotency_key__in=keys)
            | Q(transaction__reversal_of__idempotency_key__in=keys)
        )
        .select_related("transaction", "account")
        .order_by("posted_at", "transaction_id", "pk")
    )


@dataclass
class CustomerOverview:
    customer: BillingCustomer
    stripe_customer: djm.Customer | None = None
    subscriptions: list[djm.Subscription] = field(default_factory=list)
    states: dict[str, SubscriptionState] = field(default_factory=dict)
    invoices: list[djm.Invoice] = field(default_factory=list)
    charges: list[djm.Charge] = field(default_factory=list)
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
    """Subscriptions, invoices, charges, ledger lines and dunning cases of one customer."""
    overview = CustomerOverview(customer=customer)
    cus_id = customer.stripe_customer_id
    if not cus_id:
        return overview
    overview.stripe_customer = djm.Customer.objects.filter(id=cus_id).first()
    overview.subscriptions = list(
        djm.Subscription.objects.filter(customer__id=cus_id).order_by("-created")[:SECTION_LIMIT]
    )
    overview.states = {
        s.stripe_subscription_id: s
        for s in SubscriptionState.objects.filter(stripe_customer_id=cus_id)[:SECTION_LIMIT]
    }
    overview.invoices = list(
        djm.Invoice.objects.filter(customer__id=cus_id).order_by("-created")[:SECTION_LIMIT]
    )
    overview.charges = list(
        djm.Charge.objects.filter(customer__id=cus_id).order_by("-created")[:SECTION_LIMIT]
    )
    overview.ledger_entries = list(
        customer_ledger_entries(invoice_ids=[i.id for i in overview.invoices])[: SECTION_LIMIT * 4]
    )
    overview.dunning_cases = list(
        DunningCase.objects.filter(stripe_customer_id=cus_id).order_by("status", "-opened_at")[
            :SECTION_LIMIT
        ]
    )
    return overview
