import json
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from marketplace import usage_store
from marketplace.models import Meter, UsageEvent
from tests.accounts.factories import UserFactory
from tests.marketplace.helpers import (
    EVENTS,
    api_calls,
    bearer,
    error_of,
    event,
    iso,
    key_for,
    post_events,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return UserFactory()


@pytest.fixture
def client(alice):
    return bearer(key_for(alice))


def _totals(user):
    return usage_store.rollup_totals(customer_id=user.pk).get(api_calls().pk)


def test_a_batch_is_accepted_and_rolled_up(client, alice):
    response = post_events(client, [event("e1", 2), event("e2", 3.5), event("e3", 0)])
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 3, "duplicates": 0}
    assert UsageEvent.objects.filter(customer=alice).count() == 3
    assert _totals(alice) == {"count": 3, "sum": Decimal("5.5"), "max": Decimal("3.5")}


def test_fractional_quantities_are_exact(client, alice):
    post_events(client, [event(f"e{i}", 0.1) for i in range(10)])
    assert _totals(alice)["sum"] == Decimal("1.000000")
    assert UsageEvent.objects.get(event_id="e1").quantity == Decimal("0.100000")


def test_duplicates_within_a_batch_are_counted_not_stored(client, alice):
    response = post_events(client, [event("e1", 2), event("e1", 5), event("e2", 1)])
    assert response.json() == {"accepted": 2, "duplicates": 1}
    assert UsageEvent.objects.get(event_id="e1").quantity == 2
    assert _totals(alice)["sum"] == 3


def test_duplicates_across_batches_never_fail_the_batch_nor_count_twice(client, alice):
    post_events(client, [event("e1", 2), event("e2", 1)])
    response = post_events(client, [event("e2", 9), event("e3", 4), event("e1", 2)])
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 2}
    again = post_events(client, [event("e2", 9), event("e3", 4), event("e1", 2)])
    assert again.json() == {"accepted": 0, "duplicates": 3}
    assert UsageEvent.objects.filter(customer=alice).count() == 3
    assert _totals(alice) == {"count": 3, "sum": Decimal(7), "max": Decimal(4)}


def test_the_same_id_from_two_customers_is_two_events(client, alice):
    bob = UserFactory()
    post_events(client, [event("shared", 1)])
    response = post_events(bearer(key_for(bob)), [event("shared", 5)])
    assert response.json() == {"accepted": 1, "duplicates": 0}
    assert _totals(alice)["sum"] == 1
    assert _totals(bob)["sum"] == 5


def _now():
    return timezone.now()


INVALID = [
    ({"id": "", "metric": "api_calls", "quantity": 1}, "id"),
    ({"metric": "api_calls", "quantity": 1}, "id"),
    ({"id": 12, "metric": "api_calls", "quantity": 1}, "id"),
    ({"id": "x" * 256, "metric": "api_calls", "quantity": 1}, "id"),
    ({"id": "a", "metric": "nope", "quantity": 1}, "metric"),
    ({"id": "a", "quantity": 1}, "metric"),
    ({"id": "a", "metric": "api_calls", "quantity": -1}, "quantity"),
    ({"id": "a", "metric": "api_calls", "quantity": "3"}, "quantity"),
    ({"id": "a", "metric": "api_calls", "quantity": True}, "quantity"),
    ({"id": "a", "metric": "api_calls", "quantity": None}, "quantity"),
    ({"id": "a", "metric": "api_calls"}, "quantity"),
    ({"id": "a", "metric": "api_calls", "quantity": 0.0000001}, "quantity"),
    ({"id": "a", "metric": "api_calls", "quantity": 1e9}, "quantity"),
    ({"id": "a", "metric": "api_calls", "quantity": 1, "timestamp": "yesterday"}, "timestamp"),
    (
        {"id": "a", "metric": "api_calls", "quantity": 1, "timestamp": "2026-01-01T10:00"},
        "timestamp",
    ),
    ({"id": "a", "metric": "api_calls", "quantity": 1, "timestamp": None}, "timestamp"),
    ({"id": "a", "metric": "api_calls", "quantity": 1, "properties": [1]}, "properties"),
]


@pytest.mark.parametrize(("raw", "field"), INVALID)
def test_each_invalid_event_refuses_the_whole_batch(client, alice, raw, field):
    raw = dict(raw)
    raw.setdefault("timestamp", iso(_now() - timedelta(minutes=1)))
    if raw["timestamp"] is None:
        del raw["timestamp"]
    response = post_events(client, [event("good-0"), raw, event("good-2")])
    error = error_of(response, 422, "validation_error")
    assert list(error["fields"]) == [f"events[1].{field}"]
    assert error["message"].startswith(f"events[1].{field}")
    assert not UsageEvent.objects.exists()
    assert usage_store.rollup_totals(customer_id=alice.pk) == {}


def test_timestamps_older_than_35_days_or_over_5_minutes_ahead_are_refused(client):
    now = _now()
    response = post_events(
        client,
        [
            event("old", at=now - timedelta(days=35, minutes=1)),
            event("ok-old", at=now - timedelta(days=34, hours=23)),
            event("ahead", at=now + timedelta(minutes=6)),
            event("ok-ahead", at=now + timedelta(minutes=4)),
        ],
    )
    error = error_of(response, 422)
    assert set(error["fields"]) == {"events[0].timestamp", "events[2].timestamp"}


def test_every_invalid_event_is_named_by_index(client):
    response = post_events(
        client, [event("a", -1), event("b"), event("", metric="zzz"), "not an object"]
    )
    error = error_of(response, 422)
    assert set(error["fields"]) == {
        "events[0].quantity",
        "events[2].id",
        "events[2].metric",
        "events[3]",
    }


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"events": [{"id": "a", "quantity": NaN}]}', b"\xff\xfe", b""],
)
def test_bad_json_is_422(client, body):
    response = client.generic("POST", EVENTS, body, content_type="application/json")
    error_of(response, 422, "unprocessable")
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize("payload", [{}, {"events": "x"}, {"events": []}, [], {"events": None}])
def test_a_body_without_events_is_422(client, payload):
    response = client.post(EVENTS, payload, format="json")
    error = error_of(response, 422, "validation_error")
    assert "events" in error["fields"]


def test_over_1000_events_is_413(client):
    response = post_events(client, [event(f"e{i}") for i in range(1001)])
    error_of(response, 413, "payload_too_large")
    assert not UsageEvent.objects.exists()
    assert post_events(client, [event(f"e{i}") for i in range(1000)]).status_code == 202


def test_a_body_over_1_mb_is_413(client):
    body = json.dumps({"events": [event("a", properties={"pad": "x" * 1_000_001})]})
    response = client.generic("POST", EVENTS, body, content_type="application/json")
    error_of(response, 413, "payload_too_large")


def test_meter_property_filters_and_aggregations(client, alice):
    Meter.objects.create(
        code="tokens",
        name="Tokens",
        unit="token",
        aggregation="sum",
        property="tokens",
        filters={"model": "large"},
    )
    response = post_events(
        client,
        [
            event("t1", metric="tokens", properties={"model": "large", "tokens": 100}),
            event("t2", metric="tokens", properties={"model": "small", "tokens": 50}),
            event("t3", metric="tokens", properties={"model": "small"}),  # filtered out
        ],
    )
    assert response.json() == {"accepted": 3, "duplicates": 0}
    tokens = Meter.objects.get(code="tokens")
    totals = usage_store.rollup_totals(customer_id=alice.pk)[tokens.pk]
    assert totals == {"count": 1, "sum": Decimal(100), "max": Decimal(100)}
    missing = post_events(client, [event("t4", metric="tokens", properties={"model": "large"})])
    assert list(error_of(missing, 422)["fields"]) == ["events[0].properties.tokens"]


def test_inactive_meters_are_unknown(client):
    Meter.objects.filter(code="api_calls").update(is_active=False)
    error = error_of(post_events(client, [event("a")]), 422)
    assert list(error["fields"]) == ["events[0].metric"]


def test_get_event_confirms_it_and_its_period(client, alice):
    post_events(client, [event("ev/1", 2.5)])
    stored = UsageEvent.objects.get(event_id="ev/1")
    response = client.get(f"{EVENTS}/ev/1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == "ev/1"
    assert body["metric"] == "api_calls"
    assert body["quantity"] == "2.500000"
    assert body["properties"] == {}
    start = stored.timestamp.astimezone(UTC).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    end = (start + timedelta(days=32)).replace(day=1)
    assert body["period"] == {"start": iso(start), "end": iso(end)}


def test_reading_an_event_needs_read_or_write_scope(alice):
    write_only = bearer(key_for(alice, scopes=["usage:write"]))
    post_events(write_only, [event("a")])
    assert write_only.get(f"{EVENTS}/a").status_code == 200
    assert bearer(key_for(alice, scopes=["usage:read"])).get(f"{EVENTS}/a").status_code == 200
    error_of(write_only.get(f"{EVENTS}/unknown"), 404, "not_found")


def test_a_customers_key_never_reads_or_writes_another_customers_usage(client, alice):
    bob = UserFactory()
    bob_client = bearer(key_for(bob))
    post_events(client, [event("alice-1", 7)])
    error_of(bob_client.get(f"{EVENTS}/alice-1"), 404)
    summary = bob_client.get("/api/v1/usage/summary", {"metric": "api_calls"}).json()
    assert summary["value"] == "0.000000"
    # Bob's "alice-1" is his own event; Alice's stays as it was.
    assert post_events(bob_client, [event("alice-1", 1)]).json()["accepted"] == 1
    assert UsageEvent.objects.get(customer=alice, event_id="alice-1").quantity == 7
    assert _totals(alice)["sum"] == 7


def test_the_per_key_throttle_answers_429_with_retry_after(alice, settings):
    from django.conf import settings as django_settings

    rates = {**django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "usage": "2/min"}
    settings.REST_FRAMEWORK = {**django_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    client = bearer(key_for(alice))
    for i in range(2):
        assert post_events(client, [event(f"e{i}")]).status_code == 202
    response = post_events(client, [event("e3")])
    error = error_of(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert error["retry_after"] > 0
    # Per key: the same customer's other key has its own allowance.
    assert post_events(bearer(key_for(alice)), [event("e4")]).status_code == 202


def test_property_numbers_are_stored_exactly_or_refused(client, alice):
    def raw(number: str) -> str:
        at = iso(timezone.now() - timedelta(minutes=1))
        return (
            f'{{"events": [{{"id": "p{len(number)}", "metric": "api_calls", "quantity": 1, '
            f'"timestamp": "{at}", "properties": {{"price": {number}, "n": [1, {number}]}}}}]}}'
        )

    fifteen = "0.123456789012345"
    response = client.post(EVENTS, data=raw(fifteen), content_type="application/json")
    assert response.status_code == 202, response.content
    stored = UsageEvent.objects.get(customer=alice)
    assert Decimal(repr(stored.properties["price"])) == Decimal(fifteen)
    assert Decimal(repr(stored.properties["n"][1])) == Decimal(fifteen)

    sixteen = "0.1234567890123456"
    response = client.post(EVENTS, data=raw(sixteen), content_type="application/json")
    error = error_of(response, 422)
    assert list(error["fields"]) == ["events[0].properties"]
    assert UsageEvent.objects.filter(customer=alice).count() == 1
