"""Revenue gauges on /metrics: revenue_mrr{currency="usd"} and friends, in minor units.

A custom collector computes the figures at scrape time; the result is cached briefly so that
several Prometheus servers (or a fast scrape interval) do not each walk the subscriptions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.core.cache import cache
from django.db import DatabaseError
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

CACHE_KEY = "analytics:metrics:revenue"
CACHE_SECONDS = 30


def _figures() -> list[tuple[str, int, int, int, int]]:
    cached = cache.get(CACHE_KEY)
    if cached is not None:
        return cached
    from analytics.selectors import revenue_by_currency

    figures = [
        (r.currency, r.mrr, r.arr, r.active_customers, r.arpa) for r in revenue_by_currency()
    ]
    cache.set(CACHE_KEY, figures, CACHE_SECONDS)
    return figures


class RevenueCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        mrr = GaugeMetricFamily(
            "revenue_mrr", "Monthly recurring revenue in minor units", labels=["currency"]
        )
        arr = GaugeMetricFamily(
            "revenue_arr", "Annual run-rate (MRR x 12) in minor units", labels=["currency"]
        )
        active = GaugeMetricFamily(
            "revenue_active_customers", "Customers with MRR above zero", labels=["currency"]
        )
        arpa = GaugeMetricFamily(
            "revenue_arpa", "Average MRR per active customer in minor units", labels=["currency"]
        )
        try:
            figures = _figures()
        except DatabaseError:
            logger.exception("revenue gauges unavailable: database error")
            figures = []
        for currency, mrr_value, arr_value, customers, arpa_value in figures:
            mrr.add_metric([currency], mrr_value)
            arr.add_metric([currency], arr_value)
            active.add_metric([currency], customers)
            arpa.add_metric([currency], arpa_value)
        yield from (mrr, arr, active, arpa)

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
