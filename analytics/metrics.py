"""Business gauges on /metrics, next to django-prometheus' request and database metrics.

Per currency (minor units), from `analytics.reports` so /metrics, the API and
`manage.py metrics` give the same numbers for the same day:

- ``revenue_mrr``, ``revenue_arr``, ``revenue_active_customers``, ``revenue_arpa``:
  `reports.summary` for today (UTC);
- ``revenue_churned_customers_30d``: `reports.movements` over the 30 days ending today
  (``customers_churned``).

And the system's own queues:

- ``usage_events_ingested_total{meter}``: events stored by the usage store, ever (a counter,
  from the hourly rollups);
- ``webhook_inbox_lag_seconds``: age of the oldest inbox event still waiting to be processed
  (received or processing; 0 when none waits); ``webhook_inbox_failed_events``: events whose
  last attempt failed (the sweep retries them);
- ``payout_batches{status}``: payout batches per status.

A custom collector computes the figures at scrape time; the result is cached for
CACHE_SECONDS so that several Prometheus servers (or a fast scrape interval) do not each read
the tables (the lag is therefore up to CACHE_SECONDS old).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.cache import cache
from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

CACHE_KEY = "analytics:metrics:figures"
CACHE_SECONDS = 30
CHURN_WINDOW_DAYS = 30


@dataclass(frozen=True)
class CurrencyFigures:
    currency: str
    mrr: int
    arr: int
    active_customers: int
    arpa: int | None
    churned_customers_30d: int


@dataclass(frozen=True)
class Figures:
    currencies: list[CurrencyFigures] = field(default_factory=list)
    usage_events: dict[str, int] = field(default_factory=dict)
    webhook_lag_seconds: float = 0.0
    webhook_failed: int = 0
    payout_batches: dict[str, int] = field(default_factory=dict)


def revenue_figures() -> list[CurrencyFigures]:
    """Today's summary and the last 30 days' churned customers, per currency."""
    from analytics import reports

    today = timezone.now().date()
    since = today - timedelta(days=CHURN_WINDOW_DAYS - 1)
    figures = []
    for currency in reports.currencies():
        summary = reports.summary(on=today, currency=currency)
        moved = reports.movements(start=since, end=today, currency=currency)
        figures.append(
            CurrencyFigures(
                currency=currency,
                mrr=summary.mrr,
                arr=summary.arr,
                active_customers=summary.active_customers,
                arpa=summary.arpa,
                churned_customers_30d=moved.customers_churned,
            )
        )
    return figures


def webhook_inbox_figures() -> tuple[float, int]:
    """(seconds since the oldest waiting event was received, failed events)."""
    from subscriptions.models import WebhookEvent

    statuses = WebhookEvent.Status
    oldest = WebhookEvent.objects.filter(
        status__in=[statuses.RECEIVED, statuses.PROCESSING]
    ).aggregate(oldest=Min("received_at"))["oldest"]
    lag = max((timezone.now() - oldest).total_seconds(), 0.0) if oldest else 0.0
    failed = WebhookEvent.objects.filter(status=statuses.FAILED).count()
    return lag, failed


def payout_batch_figures() -> dict[str, int]:
    """Payout batches per status, every status listed (0 when none)."""
    from ledger.models import PayoutBatch

    counts = dict.fromkeys(PayoutBatch.Status.values, 0)
    for row in PayoutBatch.objects.values("status").annotate(n=Count("pk")).order_by():
        counts[row["status"]] = row["n"]
    return counts


def figures() -> Figures:
    cached = cache.get(CACHE_KEY)
    if cached is not None:
        return cached
    from marketplace.usage_store import events_ingested_by_meter

    lag, failed = webhook_inbox_figures()
    result = Figures(
        currencies=revenue_figures(),
        usage_events=events_ingested_by_meter(),
        webhook_lag_seconds=lag,
        webhook_failed=failed,
        payout_batches=payout_batch_figures(),
    )
    cache.set(CACHE_KEY, result, CACHE_SECONDS)
    return result


class RevenueCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        try:
            data = figures()
        except DatabaseError:
            logger.exception("business gauges unavailable: database error")
            return
        per_currency = {
            "revenue_mrr": ("Monthly recurring revenue in minor units", "mrr"),
            "revenue_arr": ("Annual run-rate (MRR x 12) in minor units", "arr"),
            "revenue_active_customers": ("Customers with MRR above zero", "active_customers"),
            "revenue_arpa": ("Average MRR per active customer in minor units", "arpa"),
            "revenue_churned_customers_30d": (
                "Customers whose MRR went to zero in the last 30 days",
                "churned_customers_30d",
            ),
        }
        for name, (documentation, attribute) in per_currency.items():
            gauge = GaugeMetricFamily(name, documentation, labels=["currency"])
            for row in data.currencies:
                value = getattr(row, attribute)
                if value is not None:  # ARPA without customers is undefined, not 0
                    gauge.add_metric([row.currency], value)
            yield gauge
        usage = CounterMetricFamily(
            "usage_events_ingested", "Usage events stored, ever, per meter", labels=["meter"]
        )
        for meter, count in data.usage_events.items():
            usage.add_metric([meter], count)
        yield usage
        yield GaugeMetricFamily(
            "webhook_inbox_lag_seconds",
            "Age of the oldest Stripe event waiting in the webhook inbox (0 when none waits)",
            value=data.webhook_lag_seconds,
        )
        yield GaugeMetricFamily(
            "webhook_inbox_failed_events",
            "Webhook inbox events whose last processing attempt failed",
            value=data.webhook_failed,
        )
        batches = GaugeMetricFamily(
            "payout_batches", "Payout batches per status", labels=["status"]
        )
        for status, count in data.payout_batches.items():
            batches.add_metric([status], count)
        yield batches

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # An empty describe() keeps the registry from calling collect() (a DB query) at
        # registration time.
        return iter(())


_collector: RevenueCollector | None = None


def register() -> None:
    global _collector
    if _collector is None:
        _collector = RevenueCollector()
        REGISTRY.register(_collector)
