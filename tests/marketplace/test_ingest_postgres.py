"""Ingestion under concurrency (PostgreSQL: the unique index makes concurrent batches wait)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from marketplace import usage_store
from marketplace.models import UsageEvent
from tests.accounts.factories import UserFactory
from tests.marketplace.helpers import (
    api_calls,
    event,
    key_for,
    post_concurrently,
)

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row-level concurrency needs PostgreSQL"
)


@pytest.mark.postgres
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_five_concurrent_identical_batches_change_totals_once():
    user = UserFactory()
    key = key_for(user)
    base = timezone.now() - timedelta(hours=3)
    batch = [
        event(f"e{i:04d}", Decimal(i % 7) + Decimal("0.25"), at=base + timedelta(seconds=17 * i))
        for i in range(400)
    ]
    for item in batch:
        item["quantity"] = float(item["quantity"])
    results = post_concurrently(key, batch)

    assert [status for status, _ in results] == [202] * 5
    assert sum(body["accepted"] for _, body in results) == 400
    assert sum(body["duplicates"] for _, body in results) == 1600
    assert UsageEvent.objects.filter(customer=user).count() == 400
    expected = sum(Decimal(i % 7) + Decimal("0.25") for i in range(400))
    totals = usage_store.rollup_totals(customer_id=user.pk)[api_calls().pk]
    assert totals == {"count": 400, "sum": expected, "max": Decimal("6.25")}
