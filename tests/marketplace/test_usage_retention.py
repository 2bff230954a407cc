"""Usage events past their retention: whole months of raw events (and their dedupe keys) go,
the hourly rollups that rating, summaries and the explorer read stay; on PostgreSQL a month's
partition is dropped whole."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from marketplace import usage_store
from marketplace.models import Meter, UsageEvent, UsageEventKey, UsageRollup
from tests.accounts.factories import UserFactory
from tests.marketplace.helpers import bearer, event, key_for, post_events

pytestmark = pytest.mark.django_db


def rollup_figures(user) -> list[tuple]:
    return list(
        UsageRollup.objects.filter(customer=user)
        .order_by("meter_id", "hour")
        .values_list("meter_id", "hour", "count", "sum_micros")
    )


def test_months_past_retention_lose_their_raw_events_and_keep_their_rollups(settings):
    settings.USAGE_EVENT_RETENTION_DAYS = 62
    user = UserFactory()
    client = bearer(key_for(user))
    now = timezone.now()
    last_month = now - timedelta(days=34)
    response = post_events(
        client,
        [event("a", 3, at=now - timedelta(minutes=5)), event("b", 2, at=last_month)],
    )
    assert response.status_code == 202, response.content
    rollups = rollup_figures(user)
    assert UsageEvent.objects.filter(customer=user).count() == 2

    # Within retention: nothing goes.
    kept = usage_store.usage_events_prune(now=now)
    assert (kept.events_deleted, kept.keys_deleted, kept.partitions_dropped) == (0, 0, [])
    assert UsageEvent.objects.filter(customer=user).count() == 2

    # 120 days on, both months ended more than 62 days ago.
    later = now + timedelta(days=120)
    result = usage_store.usage_events_prune(now=later, batch_size=1)
    cutoff = (later - timedelta(days=62)).astimezone(UTC)
    assert result.before == cutoff.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert not UsageEvent.objects.filter(customer=user).exists()
    assert not UsageEventKey.objects.filter(customer=user).exists()
    assert rollup_figures(user) == rollups  # what usage summaries and rating read
    summary = usage_store.rollups_read(
        customer_id=user.pk,
        meter=Meter.objects.get(code="api_calls"),
        start=last_month - timedelta(days=1),
        end=now + timedelta(hours=1),
    )
    assert sum(hour.sum for hour in summary) == 5
    again = usage_store.usage_events_prune(now=later)
    assert (again.events_deleted, again.keys_deleted, again.partitions_dropped) == (0, 0, [])
    if connection.vendor == "postgresql":
        parent = UsageEvent._meta.db_table
        assert {f"{parent}_p{now.astimezone(UTC):%Y%m}", f"{parent}_p{last_month:%Y%m}"} <= set(
            result.partitions_dropped
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [result.partitions_dropped[0]])
            assert cursor.fetchone() == (None,)
        # Partitions are made again for the months still accepted; storing works.
        usage_store.usage_partitions_ensure()
        assert post_events(client, [event("c", 1)]).status_code == 202
    else:
        assert result.events_deleted == 2 and result.keys_deleted == 2
