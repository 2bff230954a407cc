"""Revenue metrics read from dj-stripe's mirror of Stripe (DESIGN.md §6)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import F, Sum
from django.utils import timezone
from djstripe.models import Subscription

from analytics.models import MRRMovement
from analytics.mrr import MRR_STATUSES, subscription_mrr


@dataclass(frozen=True)
class CurrencyRevenue:
    currency: str
    mrr: int
    active_customers: int

    @property
    def arr(self) -> int:
        return self.mrr * 12

    @property
    def arpa(self) -> int:
        """Average revenue per account, rounded half up to a whole minor unit (as
        ``analytics.reports.arpa``), 0 without customers."""
        return (
            (2 * self.mrr + self.active_customers) // (2 * self.active_customers)
            if self.active_customers
            else 0
        )


def revenue_by_currency(*, at: datetime | None = None) -> list[CurrencyRevenue]:
    """MRR, ARR, active customers and ARPA per currency, sorted by currency code."""
    at = at or timezone.now()
    rows = (
        Subscription.objects.filter(stripe_data__status__in=sorted(MRR_STATUSES))
        .values_list("customer_id", "stripe_data")
        .iterator(chunk_size=2000)
    )
    per_customer: dict[tuple[str, str], int] = defaultdict(int)
    for customer_id, data in rows:
        currency, amount = subscription_mrr(data, at=at)
        if currency:
            per_customer[(currency, customer_id)] += amount
    mrr: dict[str, int] = defaultdict(int)
    customers: dict[str, int] = defaultdict(int)
    for (currency, _customer), amount in per_customer.items():
        mrr[currency] += amount
        if amount > 0:
            customers[currency] += 1
    return [CurrencyRevenue(c, mrr[c], customers[c]) for c in sorted(mrr)]


@dataclass(frozen=True)
class MovementSummary:
    """MRR movements of one currency over a period, in minor units (all amounts ≥ 0)."""

    currency: str
    new: int
    expansion: int
    contraction: int
    churn: int
    reactivation: int

    @property
    def net_new(self) -> int:
        return self.new + self.expansion + self.reactivation - self.contraction - self.churn


def mrr_movements_summary(*, currency: str, start: datetime, end: datetime) -> MovementSummary:
    """Totals per movement kind for movements with start ≤ occurred_at < end (one query).

    Each kind sums the subscriptions' deltas (analytics.services explains why that equals the
    customer-level movement); contraction and churn are reported as positive amounts.
    """
    rows = (
        MRRMovement.objects.filter(
            currency=currency.lower(), occurred_at__gte=start, occurred_at__lt=end
        )
        .values("kind")
        .annotate(change=Sum(F("new_mrr") - F("old_mrr")))
        .order_by()
    )
    totals = {row["kind"]: abs(row["change"] or 0) for row in rows}
    kinds = MRRMovement.Kind
    return MovementSummary(
        currency=currency.lower(),
        new=totals.get(kinds.NEW, 0),
        expansion=totals.get(kinds.EXPANSION, 0),
        contraction=totals.get(kinds.CONTRACTION, 0),
        churn=totals.get(kinds.CHURN, 0),
        reactivation=totals.get(kinds.REACTIVATION, 0),
    )
