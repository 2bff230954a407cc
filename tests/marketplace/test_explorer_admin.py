"""The staff usage explorer (/admin/marketplace/meter/explorer/): totals and buckets for events
stored through the ingestion service, who may see it, bad input, and its query count."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from marketplace import services
from marketplace.models import ApiKey, Meter, UsageEvent, month_bounds
from tests.accounts.factories import StaffUserFactory, UserFactory
from tests.marketplace.helpers import event, key_for

pytestmark = pytest.mark.django_db

EXPLORER = "/admin/marketplace/meter/explorer/"


def _base() -> datetime:
    """Midnight three days back (USAGE reaches 51 hours later, so the fourth day of the
    explorer's range stays empty whatever the time of day; an hour start three days back
    filled all four days from 21:00 UTC on): inside the ingestion window, fixed for a whole
    test."""
    return (timezone.now() - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def meters() -> dict[str, Meter]:
    return {
        "sum": Meter.objects.get(code="api_calls"),
        "count": Meter.objects.create(
            code="requests", name="Requests", unit="request", aggregation="count"
        ),
        "max": Meter.objects.create(
            code="peak", name="Peak storage", unit="GB", aggregation="max", property="gb"
        ),
        "unique_count": Meter.objects.create(
            code="users",
            name="Active users",
            unit="user",
            aggregation="unique_count",
            property="user",
        ),
    }


# (minutes after the base hour, api_calls quantity, gb, user): one event per meter per row.
USAGE = [
    (5, Decimal(2), Decimal(4), "ann"),
    (10, Decimal(3), Decimal("9.25"), "ann"),
    (70, Decimal("0.5"), Decimal(1), "bo"),
    (25 * 60, Decimal(1), Decimal(6), "ann"),
    (50 * 60 + 30, Decimal(4), Decimal(2), "cy"),
]


def _record(customer: Any, base: datetime) -> None:
    """Through the ingestion service, as the API stores them."""
    raw = []
    for i, (minutes, calls, gb, user) in enumerate(USAGE):
        at = base + timedelta(minutes=minutes)
        raw += [
            event(f"s{i}", calls, at=at),
            event(f"c{i}", 1, metric="requests", at=at),
            event(f"m{i}", 0, metric="peak", at=at, properties={"gb": gb}),
            event(f"u{i}", 1, metric="users", at=at, properties={"user": user}),
        ]
    parsed = services.usage_batch_parse(payload={"events": raw})
    services.usage_events_record(customer=customer, events=parsed)


def _expected(
    aggregation: str, group_by: str, base: datetime
) -> tuple[Decimal, dict[str, Decimal]]:
    """The total and the per-bucket values, worked out from USAGE by hand."""
    per_bucket: dict[str, list[tuple[Decimal, str]]] = defaultdict(list)
    for minutes, calls, gb, user in USAGE:
        at = base + timedelta(minutes=minutes)
        label = f"{at:%Y-%m-%d %H:00}" if group_by == "hour" else f"{at:%Y-%m-%d}"
        per_bucket[label].append((calls if aggregation != "max" else gb, user))

    def reduce(items: list[tuple[Decimal, str]]) -> Decimal:
        values = [value for value, _ in items]
        match aggregation:
            case "sum":
                return sum(values, Decimal(0))
            case "count":
                return Decimal(len(items))
            case "max":
                return max(values)
            case _:
                return Decimal(len({user for _, user in items}))

    everything = [item for items in per_bucket.values() for item in items]
    return reduce(everything), {label: reduce(items) for label, items in per_bucket.items()}


def _params(who: Any, meter: Meter, base: datetime, /, **extra: str) -> dict[str, Any]:
    params = {
        "customer": who.email,
        "meter": meter.pk,
        "start": f"{base:%Y-%m-%d}",
        "end": f"{base + timedelta(days=3):%Y-%m-%d}",
        "group_by": "day",
    }
    params.update(extra)
    return params


def _chart_data(content: str) -> dict[str, Any]:
    found = re.search(
        r'<script id="usage-chart-data" type="application/json">(.*?)</script>', content, re.S
    )
    assert found, "no chart data on the page"
    return json.loads(found.group(1))


# --- results --------------------------------------------------------------------------------


@pytest.mark.parametrize("aggregation", ["sum", "count", "max", "unique_count"])
@pytest.mark.parametrize("group_by", ["day", "hour"])
def test_total_and_buckets_as_the_meter_aggregates(admin_client, meters, aggregation, group_by):
    customer, other = UserFactory(), UserFactory()
    base = _base()
    _record(customer, base)
    _record(other, base)  # another customer's usage never shows
    meter = meters[aggregation]

    response = admin_client.get(EXPLORER, _params(customer, meter, base, group_by=group_by))

    assert response.status_code == 200
    result = response.context["result"]
    total, buckets = _expected(aggregation, group_by, base)
    assert Decimal(result.total) == total
    assert {row.label: Decimal(row.value) for row in result.rows} == buckets
    content = response.content.decode()
    assert f"<strong>{result.total}</strong> {meter.unit}" in content
    assert all(f"<td>{label}</td>" in content for label in buckets)
    # The chart has every bucket of the four days; empty ones are zero or, for a maximum, a gap.
    chart = _chart_data(content)
    assert len(chart["labels"]) == (4 if group_by == "day" else 96)
    assert chart["labels"][0] == (
        f"{base:%Y-%m-%d}" if group_by == "day" else f"{base:%Y-%m-%d} 00:00"
    )
    drawn = dict(zip(chart["labels"], chart["datasets"][0]["data"], strict=True))
    assert {label: Decimal(drawn[label]) for label in buckets} == buckets
    empty = {value for label, value in drawn.items() if label not in buckets}
    assert empty == ({None} if aggregation == "max" else {"0"})
    assert chart["y_title"] == meter.unit


def test_a_range_starting_later_leaves_earlier_usage_out(admin_client, meters):
    customer = UserFactory()
    base = _base()
    _record(customer, base)
    next_day = base + timedelta(days=1)
    response = admin_client.get(EXPLORER, _params(customer, meters["sum"], next_day))
    later = [
        calls
        for minutes, calls, _, _ in USAGE
        if (base + timedelta(minutes=minutes)).date() >= next_day.date()
    ]
    assert Decimal(response.context["result"].total) == sum(later, Decimal(0))


def test_no_usage_shows_a_zero_total_and_an_empty_table(admin_client, meters):
    customer = UserFactory(email="Quiet@Example.com")
    response = admin_client.get(
        EXPLORER, _params(customer, meters["sum"], _base(), customer="quiet@example.COM")
    )
    assert response.status_code == 200
    assert response.context["result"].total == "0"
    assert "No usage in this range." in response.content.decode()


def test_the_page_opens_on_the_current_month_with_the_chart_library_only_for_results(
    admin_client, meters
):
    response = admin_client.get(EXPLORER, {"meter": meters["max"].pk})
    assert response.status_code == 200
    form = response.context["form"]
    start, end = month_bounds(timezone.now().astimezone(UTC))
    assert form["start"].value() == start.date()
    assert form["end"].value() == (end - timedelta(days=1)).date()
    assert form["group_by"].value() == "day"
    assert form["meter"].value() == meters["max"].pk
    assert response.context["result"] is None
    assert "chart.umd.min.js" not in response.content.decode()

    customer = UserFactory()
    shown = admin_client.get(EXPLORER, _params(customer, meters["sum"], _base()))
    content = shown.content.decode()
    # The vendored library and our drawing script, with the data as JSON, not as inline code.
    assert "/static/vendor/chartjs/chart.umd.min.js" in content
    assert "/static/revenue_site/charts.js" in content
    assert '<canvas id="usage-chart" data-chart="usage-chart-data"' in content
    assert re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", content) == []


def test_the_page_reads_the_rollups_with_bounded_queries(
    admin_client, meters, django_assert_max_num_queries
):
    customer = UserFactory()
    base = _base()
    _record(customer, base)
    for aggregation in ("sum", "unique_count"):
        for group_by in ("day", "hour"):
            params = _params(customer, meters[aggregation], base, group_by=group_by)
            with django_assert_max_num_queries(10), CaptureQueriesContext(connection) as queries:
                response = admin_client.get(EXPLORER, params)
            assert response.status_code == 200
            assert not [
                q for q in queries.captured_queries if UsageEvent._meta.db_table in q["sql"]
            ]


# --- links ----------------------------------------------------------------------------------


def test_the_customers_api_keys_are_linked(admin_client, meters):
    customer, other = UserFactory(), UserFactory()
    key_for(customer, name="production")
    key_for(other, name="someone else")
    response = admin_client.get(EXPLORER, _params(customer, meters["sum"], _base()))
    assert response.context["api_key_count"] == 1
    keys_page = admin_client.get(response.context["api_keys_url"])
    assert keys_page.status_code == 200
    listed = {key.pk for key in keys_page.context["cl"].result_list}
    assert listed == set(ApiKey.objects.filter(user=customer).values_list("pk", flat=True))


def test_the_explorer_is_linked_from_the_meters_and_the_app_index(admin_client, meters):
    meter = meters["sum"]
    changelist = admin_client.get(reverse("admin:marketplace_meter_changelist")).content.decode()
    assert f'href="{EXPLORER}"' in changelist
    change = admin_client.get(reverse("admin:marketplace_meter_change", args=[meter.pk]))
    assert f'href="{EXPLORER}?meter={meter.pk}"' in change.content.decode()
    app_index = admin_client.get(reverse("admin:app_list", args=["marketplace"]))
    assert f'href="{EXPLORER}"' in app_index.content.decode()


# --- who may see it -------------------------------------------------------------------------


def _staff_client(*codenames: str) -> Client:
    staff = StaffUserFactory()
    staff.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="marketplace", codename__in=codenames)
    )
    client = Client()
    client.force_login(staff)
    return client


def test_only_staff_who_may_view_meters_see_it(meters):
    customer = UserFactory()
    key_for(customer)
    params = _params(customer, meters["sum"], _base())

    anonymous = Client().get(EXPLORER, params)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    customer_client = Client()
    customer_client.force_login(customer)
    not_staff = customer_client.get(EXPLORER, params)
    assert not_staff.status_code == 302 and "/admin/login/" in not_staff["Location"]
    assert _staff_client().get(EXPLORER, params).status_code == 403
    assert _staff_client("view_apikey").get(EXPLORER, params).status_code == 403

    viewer = _staff_client("view_meter").get(EXPLORER, params)
    assert viewer.status_code == 200
    assert viewer.context["result"] is not None
    assert "api_keys_url" not in viewer.context  # may not view API keys: no link
    both = _staff_client("view_meter", "view_apikey").get(EXPLORER, params)
    assert both.context["api_key_count"] == 1

    app_index = _staff_client("view_apikey").get(reverse("admin:app_list", args=["marketplace"]))
    assert f'href="{EXPLORER}"' not in app_index.content.decode()


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer": "nobody@example.com"}, "customer"),
        ({"customer": ""}, "customer"),
        ({"start": "2026-12-10", "end": "2026-12-09"}, "end"),
        ({"start": "2025-01-01", "end": "2026-01-02"}, "end"),  # 367 days
        ({"start": "2026-13-40"}, "start"),
        ({"end": "yesterday"}, "end"),
        ({"start": "2026-01-01", "end": "2026-02-15", "group_by": "hour"}, "group_by"),
        ({"group_by": "week"}, "group_by"),
        ({"meter": "abc"}, "meter"),
        ({"meter": "999999"}, "meter"),
        ({"start": "9999-12-01", "end": "9999-12-31"}, "end"),
    ],
)
def test_bad_input_is_a_form_error(admin_client, meters, change, field):
    customer = UserFactory()
    response = admin_client.get(EXPLORER, _params(customer, meters["sum"], _base(), **change))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert response.context["result"] is None
    assert 'class="errorlist' in response.content.decode()


def test_a_year_is_allowed(admin_client, meters):
    customer = UserFactory()
    params = _params(customer, meters["sum"], _base(), start="2025-01-01", end="2025-12-31")
    response = admin_client.get(EXPLORER, params)
    assert response.context["form"].errors == {}
    assert len(_chart_data(response.content.decode())["labels"]) == 365


def test_an_unknown_email_offers_customers_whose_email_contains_it(admin_client, meters):
    UserFactory(email="ann.lee@example.com")
    UserFactory(email="ann.k@example.org")
    UserFactory(email="bo@example.com")
    params = _params(UserFactory(), meters["sum"], _base(), customer="ann")
    response = admin_client.get(EXPLORER, params)
    offered = [s["email"] for s in response.context["suggestions"]]
    assert offered == ["ann.k@example.org", "ann.lee@example.com"]
    assert "customer=ann.k%40example.org" in response.context["suggestions"][0]["url"]
