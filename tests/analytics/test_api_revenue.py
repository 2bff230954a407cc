"""GET /api/v1/analytics/revenue: staff who may read the ledger only, bad input 400 naming the
field, every status in the schema, the report's numbers as the function computes them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.staff_groups import AFFILIATE_MANAGER, FINANCE
from subscriptions.services import invoice_postings
from tests.accounts.factories import StaffUserFactory, UserFactory
from tests.affiliates.factories import AffiliateFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/analytics/revenue"
FEB = {"start": "2026-02-01", "end": "2026-02-28", "currency": "usd"}


@pytest.fixture(autouse=True)
def _clear_throttles():
    from django.core.cache import cache

    cache.clear()


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def finance():
    return token_client(StaffUserFactory(groups=[FINANCE], password=None))


def _paid(invoice_id: str, *, paid: int, tax: int, on: datetime, account: str = "") -> None:
    invoice_postings.invoice_paid_record(
        invoice={
            "id": invoice_id,
            "customer": "cus_1",
            "currency": "usd",
            "amount_paid": paid,
            "total_taxes": [{"amount": tax}] if tax else [],
            "metadata": {"revenue_account": account} if account else {},
        },
        occurred_at=on,
    )


def _error_fields(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body["error"]) >= {"code", "message", "fields"}
    return body["error"]["fields"]


def test_staff_with_the_ledger_permission_read_the_report(finance, django_assert_max_num_queries):
    _paid("in_1", paid=12000, tax=2000, on=datetime(2026, 2, 3, tzinfo=UTC))
    _paid("in_2", paid=5000, tax=0, on=datetime(2026, 2, 9, tzinfo=UTC),
          account="revenue.api_usage")  # fmt: skip
    _paid("in_3", paid=7000, tax=0, on=datetime(2026, 3, 1, tzinfo=UTC))  # outside February

    # Token, user, permissions (group), the report's two queries (and its session settings
    # on PostgreSQL) and the ROI's one.
    with django_assert_max_num_queries(7 + int(connection.vendor == "postgresql")):
        response = finance.get(URL, {**FEB, "currency": "USD"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["start"], body["end"], body["currency"], body["group_by"]) == (
        "2026-02-01", "2026-02-28", "usd", "month",
    )  # fmt: skip
    streams = {row["stream"]: row for row in body["rows"]}
    assert [row["period"] for row in body["rows"]] == ["2026-02"] * 5
    assert streams["subscriptions"]["gross"] == 10000
    assert streams["subscriptions"]["gross_margin"] == "1.0000"
    assert streams["api_usage"]["net_revenue"] == 5000
    assert streams["content"]["gross_margin"] is None
    [total] = body["totals"]
    assert (total["period"], total["stream"], total["gross"], total["margin"]) == (
        "2026-02", "total", 15000, 15000,
    )  # fmt: skip
    assert body["affiliate_roi"] == {"referred_revenue": 0, "commissions": 0, "roi": None}


def test_group_by_none_gives_one_row_per_stream(finance):
    _paid("in_1", paid=3000, tax=0, on=datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
    _paid("in_2", paid=4000, tax=0, on=datetime(2026, 3, 1, tzinfo=UTC))
    response = finance.get(URL, {**FEB, "start": "2026-01-31", "end": "2026-03-01",
                                 "group_by": "none"})  # fmt: skip
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["group_by"] is None
    assert [r["period"] for r in body["rows"]] == [None] * 5
    assert body["totals"][0]["gross"] == 7000


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"currency": "us"}, "currency"),
        ({"currency": "u$d"}, "currency"),
        ({"start": "2026-13-01"}, "start"),
        ({"end": "yesterday"}, "end"),
        ({"start": "2026-03-01", "end": "2026-02-01"}, "start"),
        ({"start": "2000-01-01", "end": "2026-02-01"}, "start"),
        ({"group_by": "week"}, "group_by"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(finance, params, field):
    fields = _error_fields(finance.get(URL, {**FEB, **params}), 400)
    assert field in fields


def test_the_currency_is_required(finance):
    fields = _error_fields(finance.get(URL, {"start": "2026-02-01"}), 400)
    assert list(fields) == ["currency"]


def test_customers_affiliates_and_other_staff_are_refused():
    customer = token_client(UserFactory(password=None))
    affiliate = token_client(AffiliateFactory(user__password=None).user)
    # Staff, but without ledger.view_entry.
    affiliate_manager = token_client(StaffUserFactory(groups=[AFFILIATE_MANAGER], password=None))
    # ledger.view_entry without being staff.
    not_staff = UserFactory(password=None)
    not_staff.user_permissions.add(Permission.objects.get(codename="view_entry"))
    for client in (customer, affiliate, affiliate_manager, token_client(not_staff)):
        _error_fields(client.get(URL, FEB), 403)
    _error_fields(APIClient().get(URL, FEB), 401)


def test_the_endpoint_and_its_errors_are_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"][URL]["get"]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "429"}
    for status in ("400", "401", "403", "429"):
        ref = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error"
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["currency"]["required"] is True
    # Optional, so empty means not given (revenue_site.schema): the enum or "".
    choices, empty = params["group_by"]["schema"]["anyOf"]
    assert choices["enum"] == ["month", "none"] and empty == {"type": "string", "maxLength": 0}
    row = schema["components"]["schemas"]["StreamRow"]["properties"]
    assert {"gross", "refunds", "net_revenue", "commissions", "creator_share", "provider_share",
            "stripe_fees", "disputes", "margin", "gross_margin"} <= set(row)  # fmt: skip
    assert row["gross_margin"]["nullable"] is True
