"""Summaries from the rollups, and the rollups against a recount of the raw events."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace import usage_store
from marketplace.models import Meter, UsageEvent
from tests.accounts.factories import UserFactory
from tests.marketplace.helpers import SUMMARY, bearer, error_of, event, key_for, post_events

pytestmark = pytest.mark.django_db

hypothesis_db = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _base() -> datetime:
    """The start of an hour well inside the accepted window, the same for a whole test."""
    return (timezone.now() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def meters():
    Meter.objects.create(code="peak", name="Peak", unit="GB", aggregation="max", property="gb")
    Meter.objects.create(code="gauge", name="Gauge", unit="seat", aggregation="latest")
    Meter.objects.create(code="requests", name="Requests", unit="request", aggregation="count")
    Meter.objects.create(
        code="users", name="Users", unit="user", aggregation="unique_count", property="user"
    )


def _summary(client, metric, base, **params):
    params.setdefault("start", base.isoformat())
    params.setdefault("end", (base + timedelta(days=2)).isoformat())
    response = client.get(SUMMARY, {"metric": metric, **params})
    assert response.status_code == 200, response.content
    return response.json()


def test_each_aggregation_by_hand(meters):
    user = UserFactory()
    client = bearer(key_for(user))
    base = _base()
    h = [base + timedelta(minutes=m) for m in (5, 10, 70, 25 * 60)]
    post_events(
        client,
        [
            event("c1", 2, at=h[0]),
            event("c2", 3, at=h[1]),
            event("c3", 0.5, at=h[2]),
            event("c4", 1, at=h[3]),
            event("p1", 0, metric="peak", at=h[0], properties={"gb": 4}),
            event("p2", 0, metric="peak", at=h[2], properties={"gb": 9.25}),
            event("p3", 0, metric="peak", at=h[3], properties={"gb": 1}),
            event("g1", 10, metric="gauge", at=h[1]),
            event("g2", 7, metric="gauge", at=h[0]),  # older: not the latest
            event("g3", 12, metric="gauge", at=h[3]),
            event("r1", 5, metric="requests", at=h[0]),
            event("r2", 5, metric="requests", at=h[3]),
            event("u1", 1, metric="users", at=h[0], properties={"user": "ann"}),
            event("u2", 1, metric="users", at=h[1], properties={"user": "ann"}),
            event("u3", 1, metric="users", at=h[2], properties={"user": "bo"}),
            event("u4", 1, metric="users", at=h[3], properties={"user": "ann"}),
        ],
    )
    calls = _summary(client, "api_calls", base, group_by="hour")
    assert calls["value"] == "6.500000"
    assert calls["aggregation"] == "sum" and calls["unit"] == "call"
    assert [(b["value"]) for b in calls["buckets"]] == ["5.000000", "0.500000", "1.000000"]
    assert calls["buckets"][0]["start"] == base.isoformat().replace("+00:00", "Z")
    by_day = _summary(client, "api_calls", base, group_by="day")
    assert sum(Decimal(b["value"]) for b in by_day["buckets"]) == Decimal("6.5")
    assert _summary(client, "peak", base)["value"] == "9.250000"
    assert _summary(client, "gauge", base)["value"] == "12.000000"
    assert (
        _summary(client, "gauge", base, end=(base + timedelta(hours=2)).isoformat())["value"]
        == "10.000000"
    )
    assert _summary(client, "requests", base)["value"] == "2.000000"
    users = _summary(client, "users", base, group_by="hour")
    assert users["value"] == "2.000000"
    assert [b["value"] for b in users["buckets"]] == ["1.000000", "1.000000", "1.000000"]
    # A range covers whole hours starting inside it.
    later = _summary(client, "api_calls", base, start=(base + timedelta(hours=1)).isoformat())
    assert later["value"] == "1.500000"


def test_the_summary_reads_rollups_never_raw_events():
    user = UserFactory()
    client = bearer(key_for(user))
    post_events(client, [event(f"e{i}", i) for i in range(20)])
    with CaptureQueriesContext(connection) as queries:
        body = client.get(SUMMARY, {"metric": "api_calls"}).json()
    assert body["value"] == str(Decimal(sum(range(20))).quantize(Decimal("0.000001")))
    assert not [q for q in queries.captured_queries if UsageEvent._meta.db_table in q["sql"]]


def test_the_default_range_is_the_current_month_and_parameters_are_checked():
    client = bearer(key_for(UserFactory()))
    body = client.get(SUMMARY, {"metric": "api_calls"}).json()
    start = datetime.fromisoformat(body["start"])
    assert start.day == 1 and start.hour == 0 and start <= timezone.now()
    assert body["group_by"] == "day" and body["buckets"] == []
    error_of(client.get(SUMMARY, {"metric": "nope"}), 404, "not_found")
    error_of(client.get(SUMMARY, {}), 400, "validation_error")
    error = error_of(client.get(SUMMARY, {"metric": "api_calls", "group_by": "week"}), 400)
    assert "group_by" in error["fields"]
    now = timezone.now().isoformat()
    error = error_of(client.get(SUMMARY, {"metric": "api_calls", "start": now, "end": now}), 400)
    assert "end" in error["fields"]


# --- rollups always equal a recount ---------------------------------------------------------

quantity = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False)
raw_event = st.tuples(
    st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"]),  # ids: repeats are duplicates
    st.sampled_from(["api_calls", "filtered"]),
    quantity,
    st.integers(min_value=0, max_value=72 * 60),  # minutes after the base hour
    st.sampled_from(["eu", "us"]),
)


@hypothesis_db
@given(batches=st.lists(st.lists(raw_event, min_size=1, max_size=8), min_size=1, max_size=4))
def test_rollups_always_equal_a_recount_of_the_raw_events(batches):
    Meter.objects.get_or_create(
        code="filtered",
        defaults={
            "name": "EU max",
            "unit": "unit",
            "aggregation": "max",
            "filters": {"region": "eu"},
        },
    )
    user = UserFactory()
    client = bearer(key_for(user))
    base = (timezone.now() - timedelta(days=4)).replace(minute=0, second=0, microsecond=0)
    seen: set[str] = set()
    for batch in batches:
        body = [
            event(
                event_id,
                float(q),  # up to 15 significant digits: the server parses it back exactly
                metric=metric,
                at=base + timedelta(minutes=minutes),
                properties={"region": region},
            )
            for event_id, metric, q, minutes, region in batch
        ]
        response = post_events(client, body)
        assert response.status_code == 202, response.content
        ids = [item["id"] for item in body]
        new = len(set(ids) - seen)
        assert response.json() == {"accepted": new, "duplicates": len(ids) - new}
        seen |= set(ids)

    recount: dict[tuple[int, datetime], list[Decimal]] = {}
    for stored in usage_store.events_for_customer(customer_id=user.pk):
        if stored.meter.filters and stored.properties.get("region") != "eu":
            continue
        hour = stored.timestamp.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        recount.setdefault((stored.meter_id, hour), []).append(stored.quantity)
    rollups = {
        (meter_id, row.hour): row
        for meter_id in {key[0] for key in recount}
        for row in usage_store.rollups_read(
            customer_id=user.pk,
            meter=Meter.objects.get(pk=meter_id),
            start=base,
            end=base + timedelta(days=4),
        )
    }
    assert set(rollups) == set(recount)
    for key, quantities in recount.items():
        row = rollups[key]
        assert row.count == len(quantities)
        assert row.sum == sum(quantities)
        assert row.max == max(quantities)
