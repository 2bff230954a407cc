"""Revenue metrics read from dj-stripe's mirror of Stripe (DESIGN.md §6)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from djstripe.models import Subscription

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
        """Average revenue per account, rounded down to a whole minor unit."""
        return self.mrr // self.active_customers if self.active_customers else 0


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
