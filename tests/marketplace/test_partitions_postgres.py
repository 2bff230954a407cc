"""Usage events partitioned by month (PostgreSQL): the partitions, where events land, duplicates
across timestamps and partitions, concurrent batches, and partitions created late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from marketplace import usage_store
from marketplace.models import UsageEvent, UsageEventKey
from marketplace.tasks import usage_partitions_ensure as usage_partitions_ensure_task
from tests.accounts.factories import UserFactory
from tests.marketplace.helpers import (
    api_calls,
    bearer,
    event,
    key_for,
    post_concurrently,
    post_events,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's"),
]

TABLE = UsageEvent._meta.db_table


def partitions() -> dict[str, str]:
    """The events table's partitions: name -> bound expression."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        return dict(cursor.fetchall())


def partition_of(customer_id: int, event_id: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {TABLE}"  # noqa: S608
            " WHERE customer_id = %s AND event_id = %s",
            [customer_id, event_id],
        )
        return [row[0] for row in cursor.fetchall()]


def month_name(at: datetime) -> str:
    return f"{TABLE}_p{at.astimezone(UTC):%Y%m}"


@pytest.mark.django_db
def test_the_table_is_partitioned_with_the_months_in_reach_and_a_default():
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        assert cursor.fetchone() == ("p",)
    names = partitions()
    assert names[f"{TABLE}_default"] == "DEFAULT"
    now = timezone.now()
    for at in (now - timedelta(days=35), now, now + timedelta(days=31), now + timedelta(days=92)):
        assert month_name(at) in names
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    bound = names[month_name(now)]
    assert f"FROM ('{start:%Y-%m-%d %H:%M:%S}+00')" in bound


@pytest.mark.django_db
def test_an_event_lands_in_its_months_partition_and_is_read_back():
    user = UserFactory()
    client = bearer(key_for(user))
    now = timezone.now()
    old = now - timedelta(days=34)
    response = post_events(client, [event("now", at=now), event("old", 2, at=old)])
    assert response.json() == {"accepted": 2, "duplicates": 0}
    assert partition_of(user.pk, "now") == [month_name(now)]
    assert partition_of(user.pk, "old") == [month_name(old)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TABLE}_default")  # noqa: S608
        assert cursor.fetchone() == (0,)
    stored = usage_store.event_get(customer_id=user.pk, event_id="old")
    assert stored is not None
    assert (stored.quantity, stored.timestamp) == (Decimal(2), old)
    assert client.get("/api/v1/usage/events/old").json()["quantity"] == "2.000000"


@pytest.mark.django_db
def test_an_id_resent_with_another_timestamp_is_a_duplicate():
    user = UserFactory()
    client = bearer(key_for(user))
    now = timezone.now()
    first, retry = now - timedelta(days=33), now - timedelta(minutes=1)  # another partition
    assert month_name(first) != month_name(retry)  # 33 days apart: never the same month
    assert post_events(client, [event("e1", 5, at=first)]).json() == {
        "accepted": 1,
        "duplicates": 0,
    }
    assert post_events(client, [event("e1", 7, at=retry), event("e2", 1, at=retry)]).json() == {
        "accepted": 1,
        "duplicates": 1,
    }
    assert UsageEvent.objects.filter(customer=user, event_id="e1").count() == 1
    assert UsageEventKey.objects.filter(customer=user).count() == 2
    assert partition_of(user.pk, "e1") == [month_name(first)]
    stored = usage_store.event_get(customer_id=user.pk, event_id="e1")
    assert stored is not None and stored.quantity == 5
    totals = usage_store.rollup_totals(customer_id=user.pk)[api_calls().pk]
    assert totals == {"count": 2, "sum": Decimal(6), "max": Decimal(5)}


@pytest.mark.django_db(transaction=True)
def test_five_concurrent_identical_batches_over_two_months_store_once():
    user = UserFactory()
    key = key_for(user)
    now = timezone.now()
    batch = [
        event(f"e{i:04d}", (i % 9) + 0.5, at=now - timedelta(days=34) + timedelta(hours=2 * i))
        for i in range(400)
    ]
    results = post_concurrently(key, batch)

    assert [status for status, _ in results] == [202] * 5
    assert sum(body["accepted"] for _, body in results) == 400
    assert sum(body["duplicates"] for _, body in results) == 1600
    stored = usage_store.events_for_customer(customer_id=user.pk)
    assert len(stored) == 400
    assert len({partition_of(user.pk, e.event_id)[0] for e in stored[::50]}) >= 2
    recount = {
        "count": len(stored),
        "sum": sum((e.quantity for e in stored), Decimal(0)),
        "max": max(e.quantity for e in stored),
    }
    assert usage_store.rollup_totals(customer_id=user.pk)[api_calls().pk] == recount
    assert recount["sum"] == sum(Decimal(i % 9) + Decimal("0.5") for i in range(400))


@pytest.mark.django_db(transaction=True)
def test_ensure_is_idempotent_and_creates_months_ahead():
    later = timezone.now() + timedelta(days=700)
    names = [month_name(later + timedelta(days=31 * n)) for n in range(-1, 4)]
    try:
        before = set(partitions())
        assert usage_partitions_ensure_task() == []  # after migrate: nothing missing
        created = usage_store.usage_partitions_ensure(months_ahead=3, now=later)
        assert set(names) <= set(created) | before
        assert set(partitions()) == before | set(created)
        assert usage_store.usage_partitions_ensure(months_ahead=3, now=later) == []
        assert set(partitions()) == before | set(created)
    finally:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(f'DROP TABLE IF EXISTS "{name}"')


@pytest.mark.django_db(transaction=True)
def test_rows_in_default_move_into_a_partition_created_late():
    """An event stored for a month with no partition lands in DEFAULT; creating the month's
    partition moves it there, and it is still found and counted once."""
    user = UserFactory()
    meter = api_calls()
    at = datetime(2031, 5, 17, 9, 30, tzinfo=UTC)
    name = month_name(at)
    around = [name, month_name(at - timedelta(days=35))]
    with connection.cursor() as cursor:
        for table in around:
            cursor.execute(f'DROP TABLE IF EXISTS "{table}"')
    try:
        new = usage_store.NewEvent(
            event_id="late",
            meter=meter,
            quantity=Decimal("1.5"),
            timestamp=at,
            properties={},
            counted=True,
            value_micros=usage_store.to_micros(Decimal("1.5")),
        )
        assert usage_store.events_store(customer_id=user.pk, events=[new]).accepted == 1
        assert partition_of(user.pk, "late") == [f"{TABLE}_default"]
        created = usage_store.usage_partitions_ensure(months_ahead=0, now=at)
        assert name in created
        assert partition_of(user.pk, "late") == [name]
        stored = usage_store.event_get(customer_id=user.pk, event_id="late")
        assert stored is not None and stored.quantity == Decimal("1.5")
        again = usage_store.events_store(customer_id=user.pk, events=[new])
        assert (again.accepted, again.duplicates) == (0, 1)
    finally:
        with connection.cursor() as cursor:
            for table in around:
                cursor.execute(f'DROP TABLE IF EXISTS "{table}"')


@pytest.mark.django_db
def test_ids_and_properties_with_copy_special_characters_are_stored_as_sent():
    """The events are written with COPY on PostgreSQL: tabs, newlines, backslashes and
    non-ASCII text in ids and properties come back unchanged."""
    user = UserFactory()
    client = bearer(key_for(user))
    odd_id = "a\tb\\c\nd\re é \\N"
    properties = {"path": "C:\\x\ty\n", "quote": '"q"', "text": "héllo ✓", "n": 1.25}
    response = post_events(client, [event(odd_id, 0, properties=properties)])
    assert response.json() == {"accepted": 1, "duplicates": 0}
    stored = usage_store.event_get(customer_id=user.pk, event_id=odd_id)
    assert stored is not None
    assert (stored.event_id, stored.properties, stored.quantity) == (odd_id, properties, 0)
    assert post_events(client, [event(odd_id)]).json() == {"accepted": 0, "duplicates": 1}
