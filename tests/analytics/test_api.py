"""The staff analytics API: who may read it, its input errors, its schema, and that it gives the
same figures as analytics.reports and `manage.py metrics`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from analytics import reports
from analytics.services import mrr_movement_record
from tests.accounts.factories import StaffUserFactory, SuperuserFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def _record(customer, sub, day, old, new, currency="usd"):
    mrr_movement_record(
        stripe_customer_id=customer,
        stripe_subscription_id=sub,
        currency=currency,
        old_mrr=old,
        new_mrr=new,
        occurred_at=datetime.combine(day, time(12), tzinfo=UTC),
        source_event_id=f"evt_{customer}_{sub}_{day}",
    )


@pytest.fixture
def usd_story():
    _record("cus_a", "a", date(2026, 1, 5), 0, 1000)
    _record("cus_b", "b", date(2026, 1, 10), 0, 2000)
    _record("cus_a", "a", date(2026, 2, 10), 1000, 0)
    _record("cus_c", "c", date(2026, 2, 12), 0, 700)


def _client(user=None):
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def staff():
    return _client(UserFactory(is_staff=True, groups=["Finance"]))


def _error_fields(response):
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "fields"} <= set(body["error"])
    return body["error"]["fields"]


URLS = [
    "/api/v1/analytics/summary?currency=usd",
    "/api/v1/analytics/movements?currency=usd",
    "/api/v1/analytics/cohorts?currency=usd",
]


@pytest.mark.parametrize("url", URLS)
def test_only_staff_with_the_permission_may_read(url):
    assert _client().get(url).status_code == 401
    customer = _client(UserFactory())  # a customer's (or an affiliate's) token
    refused = customer.get(url)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert _client(StaffUserFactory()).get(url).status_code == 403  # staff, no permission
    assert (
        _client(UserFactory(is_staff=True, groups=["Affiliate manager"])).get(url).status_code
        == 403
    )
    assert _client(UserFactory(is_staff=True, groups=["Read-only"])).get(url).status_code == 200
    assert _client(SuperuserFactory()).get(url).status_code == 200


def test_summary_matches_the_report_and_the_command(
    usd_story, staff, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        response = staff.get("/api/v1/analytics/summary?date=2026-02-28&currency=usd")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "date": "2026-02-28",
        "currency": "usd",
        "mrr": 2700,
        "arr": 32_400,
        "active_customers": 2,
        "arpa": 1350,
        "usage_run_rate": 0,
    }
    assert body == reports.summary(on=date(2026, 2, 28), currency="usd").as_dict()
    out = StringIO()
    call_command("metrics", "--date", "2026-02-28", "--currency", "usd", "--json", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == body


def test_summary_currency_defaults_to_the_only_one(usd_story, staff):
    response = staff.get("/api/v1/analytics/summary?date=2026-01-31")
    assert response.status_code == 200
    assert (response.json()["currency"], response.json()["mrr"]) == ("usd", 3000)
    _record("cus_e", "e", date(2026, 1, 5), 0, 500, currency="eur")
    cache.clear()  # the currencies are cached for a few minutes
    refused = staff.get("/api/v1/analytics/summary?date=2026-01-31")
    assert refused.status_code == 400
    assert "eur, usd" in _error_fields(refused)["currency"][0]


def test_summary_date_defaults_to_today(usd_story, staff):
    body = staff.get("/api/v1/analytics/summary?currency=usd").json()
    assert body["date"] == datetime.now(tz=UTC).date().isoformat()
    assert body["mrr"] == 2700


def test_movements(usd_story, staff, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        response = staff.get(
            "/api/v1/analytics/movements?start=2026-02-01&end=2026-02-28&currency=usd"
        )
    assert response.status_code == 200
    body = response.json()
    assert (
        body
        == reports.movements(
            start=date(2026, 2, 1), end=date(2026, 2, 28), currency="usd"
        ).as_dict()
    )
    assert (body["mrr_start"], body["mrr_end"], body["new"], body["churn"]) == (
        3000,
        2700,
        700,
        1000,
    )
    assert body["net_new"] == -300
    assert (body["customer_churn_rate"], body["nrr"], body["quick_ratio"]) == (
        "0.5000",
        "0.6667",
        "0.7000",
    )


def test_cohorts(usd_story, staff, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        response = staff.get(
            "/api/v1/analytics/cohorts?start=2026-01-01&end=2026-02-28&currency=usd"
        )
    assert response.status_code == 200
    assert response.json() == {
        "currency": "usd",
        "months": ["2026-01", "2026-02"],
        "rows": [
            {
                "cohort": "2026-01",
                "customers": 2,
                "mrr": 3000,
                "customer_retention": ["1.0000", "0.5000"],
                "revenue_retention": ["1.0000", "0.6667"],
            },
            {
                "cohort": "2026-02",
                "customers": 1,
                "mrr": 700,
                "customer_retention": ["1.0000"],
                "revenue_retention": ["1.0000"],
            },
        ],
    }


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/analytics/summary?date=2026-13-01&currency=usd", "date"),
        ("/api/v1/analytics/summary?date=yesterday&currency=usd", "date"),
        ("/api/v1/analytics/summary?date=2026-01-01&currency=dollars", "currency"),
        ("/api/v1/analytics/summary?date=2026-01-01&currency=u1d", "currency"),
        ("/api/v1/analytics/summary?date=2026-01-01", "currency"),  # no data: no default
        ("/api/v1/analytics/movements?start=2026-02-01&end=2026-01-01&currency=usd", "start"),
        ("/api/v1/analytics/movements?start=2026-02-30&currency=usd", "start"),
        ("/api/v1/analytics/movements?end=20260101&currency=usd", "end"),
        ("/api/v1/analytics/cohorts?start=2020-01-01&end=2026-01-01&currency=usd", "start"),
        ("/api/v1/analytics/cohorts?start=2026-03-01&end=2026-01-01&currency=usd", "start"),
    ],
)
def test_bad_input_is_400_naming_the_field(url, field, staff):
    response = staff.get(url)
    assert response.status_code == 400, response.content
    assert field in _error_fields(response)


def test_the_endpoints_and_their_errors_are_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    expected = {
        "/api/v1/analytics/summary": ("Summary", {"date", "currency"}),
        "/api/v1/analytics/movements": ("Movements", {"start", "end", "currency"}),
        "/api/v1/analytics/cohorts": ("Cohorts", {"start", "end", "currency"}),
    }
    for path, (component, parameters) in expected.items():
        operation = schema["paths"][path]["get"]
        assert set(operation["responses"]) == {"200", "400", "401", "403", "429"}, path
        for status in ("400", "401", "403", "429"):
            ref = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error"
        assert {p["name"] for p in operation["parameters"]} == parameters
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ok == f"#/components/schemas/{component}"
    components = schema["components"]["schemas"]
    # The schema names exactly the keys the reports return.
    summary = reports.summary(on=date(2026, 1, 1), currency="usd").as_dict()
    assert set(components["Summary"]["properties"]) == set(summary)
    movements = reports.movements(start=date(2026, 1, 1), end=date(2026, 1, 2), currency="usd")
    assert set(components["Movements"]["properties"]) == set(movements.as_dict())
    assert components["Movements"]["properties"]["nrr"]["nullable"] is True
    assert set(components["Cohorts"]["properties"]) == {"currency", "months", "rows"}
