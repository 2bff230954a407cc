"""The creator's money endpoints: earnings from the ledger, usage, payouts, balance and payout
settings; isolation between creators (404), what a co-creator sees, bounded queries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone
from rest_framework.test import APIClient

from content import payouts
from content.licensing import license_usage_record
from content.models import LicenseUsage
from content.services import content_shares_set, license_key_generate
from ledger.models import Entry, PayeeProfile
from ledger.payouts import payout_batch_run
from tests.accounts.factories import UserFactory
from tests.content.factories import (
    ContentItemFactory,
    CreatorFactory,
    LicenseFactory,
    LicenseTypeFactory,
)
from tests.content.sales import refund, sell

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_fake")]

EARNINGS = "/api/v1/creator/earnings/"
USAGE = "/api/v1/creator/usage/"
PAYOUTS = "/api/v1/creator/payouts/"
BALANCE = "/api/v1/creator/balance"
SETTINGS = "/api/v1/creator/payout-settings"
PROFILE = "/api/v1/creator/profile"


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body["error"]) >= {"code", "message", "fields"}
    return body["error"]


@pytest.fixture(autouse=True)
def _payout_settings(settings):
    settings.CONTENT_PAYOUT_HOLD_DAYS = 14
    settings.CONTENT_PAYOUT_MINIMUM = 1000


@pytest.fixture
def studio():
    """Owner A (20 % fee) with a solo item and an item co-created with B (50 / 50); creator C
    unrelated. Sales in February and March, one refund."""
    a = CreatorFactory(platform_fee_percent=Decimal("20.00"))
    b = CreatorFactory(platform_fee_percent=Decimal("20.00"))
    c = CreatorFactory()
    solo = LicenseTypeFactory(item=ContentItemFactory(owner=a, title="Solo"), amount=10_000)
    shared_item = ContentItemFactory(owner=a, title="Shared")
    content_shares_set(item=shared_item, shares=[(a, Decimal(50)), (b, Decimal(50))])
    shared = LicenseTypeFactory(item=shared_item, amount=5000)
    jpy = LicenseTypeFactory(item=solo.item, kind="editorial", amount=12_000, currency="jpy")
    other = LicenseTypeFactory(item=ContentItemFactory(owner=c, title="Theirs"), amount=7000)

    sold = {
        "solo_feb": sell(solo, at=at(2, 10)),  # A 8000
        "solo_mar": sell(solo, at=at(3, 5)),  # A 8000, refunded 2500 → A -2000
        "shared_mar": sell(shared, at=at(3, 6)),  # 4000: A 2000, B 2000
        "jpy_mar": sell(jpy, at=at(3, 7)),  # A 9600 jpy
        "other": sell(other, at=at(3, 8)),  # C only
    }
    refund(sold["solo_mar"], at=at(3, 20), amount=2500)
    return {"a": a, "b": b, "c": c, "solo": solo, "shared": shared, "other": other, **sold}


def ledger_net(creator) -> dict[str, int]:
    rows = (
        Entry.objects.filter(account__code=f"payable.creator.{creator.pk}")
        .exclude(transaction__source="ledger.payout")
        .values("currency")
        .annotate(total=Sum("amount"))
    )
    return {row["currency"]: -row["total"] for row in rows}


# --- earnings ------------------------------------------------------------------------------


def test_earnings_by_item_and_month_equal_the_ledger(studio, django_assert_max_num_queries):
    a = studio["a"]
    with django_assert_max_num_queries(5):
        body = client_for(a.user).get(EARNINGS).json()
    solo, shared = studio["solo"].item, studio["shared"].item
    assert body["count"] == 4
    assert body["results"] == [
        {
            "content": {"id": solo.pk, "title": "Solo"},
            "period": "2026-03",
            "currency": "jpy",
            "sales": 9600,
            "royalties": 0,
            "reversals": 0,
            "other": 0,
            "net": 9600,
        },
        {
            "content": {"id": solo.pk, "title": "Solo"},
            "period": "2026-03",
            "currency": "usd",
            "sales": 8000,
            "royalties": 0,
            "reversals": -2000,
            "other": 0,
            "net": 6000,
        },
        {
            "content": {"id": shared.pk, "title": "Shared"},
            "period": "2026-03",
            "currency": "usd",
            "sales": 2000,
            "royalties": 0,
            "reversals": 0,
            "other": 0,
            "net": 2000,
        },
        {
            "content": {"id": solo.pk, "title": "Solo"},
            "period": "2026-02",
            "currency": "usd",
            "sales": 8000,
            "royalties": 0,
            "reversals": 0,
            "other": 0,
            "net": 8000,
        },
    ]
    totals: dict[str, int] = {}
    for row in body["results"]:
        totals[row["currency"]] = totals.get(row["currency"], 0) + row["net"]
    assert totals == ledger_net(a) == {"usd": 16_000, "jpy": 9600}


def test_earnings_filter_by_period_and_content(studio):
    client = client_for(studio["a"].user)
    march = client.get(EARNINGS, {"start": "2026-03-01", "end": "2026-03-31"}).json()
    assert {row["period"] for row in march["results"]} == {"2026-03"}
    assert march["count"] == 3
    # The refund on the 20th is outside a period that ends on the 19th.
    early = client.get(EARNINGS, {"start": "2026-03-01", "end": "2026-03-19"}).json()
    solo_usd = [
        r for r in early["results"] if r["currency"] == "usd" and r["content"]["title"] == "Solo"
    ]
    assert solo_usd[0]["reversals"] == 0
    shared = client.get(EARNINGS, {"content": studio["shared"].item.pk}).json()
    assert [row["net"] for row in shared["results"]] == [2000]
    paged = client.get(EARNINGS, {"limit": 1, "offset": 1}).json()
    assert paged["count"] == 4 and len(paged["results"]) == 1
    assert error_of(client.get(EARNINGS, {"start": "2026-04-01", "end": "2026-03-01"}), 400)[
        "fields"
    ].keys() == {"end"}
    assert error_of(client.get(EARNINGS, {"start": "March"}), 400)["fields"].keys() == {"start"}


def test_a_creator_cannot_see_another_creators_earnings(studio):
    a, c = studio["a"], studio["c"]
    theirs = studio["other"].content_id
    error_of(client_for(a.user).get(EARNINGS, {"content": theirs}), 404)
    error_of(client_for(a.user).get(USAGE, {"content": theirs}), 404)
    error_of(client_for(a.user).get(EARNINGS, {"content": 10**9}), 404)
    body = client_for(c.user).get(EARNINGS).json()
    assert [(r["content"]["title"], r["net"]) for r in body["results"]] == [("Theirs", 5600)]
    error_of(client_for(c.user).get(EARNINGS, {"content": studio["solo"].item.pk}), 404)


def test_a_co_creator_sees_the_shared_item_and_only_their_own_share(studio):
    b = studio["b"]
    client = client_for(b.user)
    body = client.get(EARNINGS).json()
    assert [(r["content"]["title"], r["sales"], r["net"]) for r in body["results"]] == [
        ("Shared", 2000, 2000)
    ]
    assert client.get(EARNINGS, {"content": studio["shared"].item.pk}).status_code == 200
    error_of(client.get(EARNINGS, {"content": studio["solo"].item.pk}), 404)
    # The owner's licence list stays the owner's.
    assert client.get("/api/v1/creator/licenses/").json()["count"] == 0
    shared_license = studio["shared_mar"]
    error_of(client.get(f"/api/v1/creator/licenses/{shared_license.pk}/"), 404)
    assert (
        client_for(studio["a"].user)
        .get(f"/api/v1/creator/licenses/{shared_license.pk}/")
        .status_code
        == 200
    )


def test_not_a_creator_is_403_and_anonymous_is_401(studio):
    for url in (EARNINGS, USAGE, PAYOUTS, BALANCE, SETTINGS):
        error_of(client_for(UserFactory(password=None)).get(url), 403)
        error_of(APIClient().get(url), 401)


# --- usage ---------------------------------------------------------------------------------


def test_usage_is_aggregated_by_item_event_and_day(django_assert_max_num_queries):
    a, b = CreatorFactory(), CreatorFactory()
    item = ContentItemFactory(owner=a, title="Maps")
    content_shares_set(item=item, shares=[(a, Decimal("60")), (b, Decimal("40"))])
    license_type = LicenseTypeFactory(item=item, limits={"downloads": 3})
    first, second, other = _keys(3)
    for key in (first, second):
        LicenseFactory(license_type=license_type, new_key=key)
    stranger = LicenseFactory(new_key=other)
    for key in (first.key, second.key):
        license_usage_record(key=key, event="view", quantity=5, event_id="v1", at=at(3, 1, 9))
        license_usage_record(key=key, event="view", quantity=1, event_id="v2", at=at(3, 1, 22))
    license_usage_record(key=first.key, event="download", quantity=3, event_id="d1", at=at(3, 2))
    license_usage_record(key=first.key, event="download", quantity=1, event_id="d2", at=at(3, 2))
    license_usage_record(key=other.key, event="view", quantity=9, event_id="s", at=at(3, 1))
    assert LicenseUsage.objects.filter(denied=True).count() == 1

    with django_assert_max_num_queries(5):
        body = client_for(a.user).get(USAGE).json()
    assert body["count"] == 2
    assert body["results"] == [
        {
            "content": {"id": item.pk, "title": "Maps"},
            "event": "download",
            "day": "2026-03-02",
            "quantity": 3,
            "denied": 1,
            "licenses": 1,
        },
        {
            "content": {"id": item.pk, "title": "Maps"},
            "event": "view",
            "day": "2026-03-01",
            "quantity": 12,
            "denied": 0,
            "licenses": 2,
        },
    ]
    # The co-creator sees the same aggregate; filters narrow it.
    assert client_for(b.user).get(USAGE).json()["results"] == body["results"]
    only = client_for(a.user).get(
        USAGE, {"event": "view", "start": "2026-03-01", "end": "2026-03-01"}
    )
    assert [row["quantity"] for row in only.json()["results"]] == [12]
    assert client_for(a.user).get(USAGE, {"start": "2026-03-03"}).json()["count"] == 0
    error_of(client_for(a.user).get(USAGE, {"event": "stream"}), 400)
    error_of(client_for(a.user).get(USAGE, {"content": stranger.content_id}), 404)


def _keys(n: int):
    return [license_key_generate() for _ in range(n)]


# --- payouts, balance, settings ------------------------------------------------------------


def test_payouts_list_the_creators_own_with_their_status(studio, django_assert_max_num_queries):
    a = studio["a"]
    payouts.creator_payout_settings_update(
        creator=a, method="paypal", paypal_email="a@paypal.example"
    )
    payout_batch_run(payee_type="creator", as_of=date(2026, 3, 31))
    client = client_for(a.user)
    with django_assert_max_num_queries(5):
        body = client.get(PAYOUTS).json()
    # Everything is past the 14-day hold on the 31st; the refund of the 20th counts at once.
    assert [
        (r["as_of"], r["amount"], r["currency"], r["status"], r["method"]) for r in body["results"]
    ] == [
        ("2026-03-31", 16_000, "usd", "paid", "paypal"),
        ("2026-03-31", 9600, "jpy", "paid", "paypal"),
    ]
    assert client_for(studio["b"].user).get(PAYOUTS).json()["count"] == 0  # no method: unpaid
    assert client_for(studio["c"].user).get(PAYOUTS).json()["count"] == 0
    assert client.get(BALANCE).json() == []
    assert client_for(studio["b"].user).get(BALANCE).json() == [
        {"currency": "usd", "balance": 2000, "held": 0, "available": 2000, "minimum": 1000}
    ]


def test_the_balance_holds_recent_earnings():
    creator = CreatorFactory(platform_fee_percent=Decimal("20.00"))
    license_type = LicenseTypeFactory(item=ContentItemFactory(owner=creator), amount=10_000)
    now = timezone.now()
    sell(license_type, at=now - timedelta(days=30))
    sell(license_type, at=now - timedelta(days=1))
    assert client_for(creator.user).get(BALANCE).json() == [
        {"currency": "usd", "balance": 16_000, "held": 8000, "available": 8000, "minimum": 1000}
    ]


def test_payout_settings_are_set_and_read_back_and_validated():
    creator = CreatorFactory()
    client = client_for(creator.user)
    assert client.get(SETTINGS).json()["method"] == ""
    error = error_of(
        client.put(SETTINGS, {"method": "bank_csv", "bank_iban": "DE00"}, format="json"), 400
    )
    assert {"bank_iban", "bank_bic", "bank_account_name"} <= set(error["fields"])
    error_of(client.put(SETTINGS, {"method": "cheque"}, format="json"), 400)
    body = client.put(
        SETTINGS,
        {
            "method": "stripe_connect",
            "stripe_account_id": " acct_1Creator ",
            "paypal_email": "x@y.z",
        },
        format="json",
    ).json()
    assert (body["method"], body["stripe_account_id"], body["paypal_email"]) == (
        "stripe_connect",
        "acct_1Creator",
        "",
    )
    assert client.get(SETTINGS).json()["stripe_account_id"] == "acct_1Creator"
    assert PayeeProfile.objects.get(payee_type="creator", payee_id=creator.pk).method == (
        "stripe_connect"
    )


def test_onboarding_through_the_api_with_a_payout_method():
    user = UserFactory(password=None)
    client = client_for(user)
    error = error_of(
        client.post(
            PROFILE, {"display_name": "Ann", "payout": {"method": "paypal"}}, format="json"
        ),
        400,
    )
    assert "paypal_email" in error["fields"]
    error_of(client.get(PROFILE), 403)  # nothing was created
    response = client.post(
        PROFILE,
        {
            "display_name": "Ann",
            "payout": {
                "method": "bank_csv",
                "bank_account_name": "Ann Example",
                "bank_iban": "DE89 3704 0044 0532 0130 00",
                "bank_bic": "cobadeffxxx",
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = client.get(SETTINGS).json()
    assert (body["method"], body["bank_iban"], body["bank_bic"]) == (
        "bank_csv",
        "DE89370400440532013000",
        "COBADEFFXXX",
    )
    # Without a payout method: a creator whose earnings wait until they choose one.
    other = client_for(UserFactory(password=None))
    assert other.post(PROFILE, {"display_name": "Bo"}, format="json").status_code == 201
    assert other.get(SETTINGS).json()["method"] == ""


def test_the_schema_documents_every_status_with_the_error_shape(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    creator = {"401", "403", "429"}
    expected = {
        (EARNINGS, "get"): {"200", "400", "404", *creator},
        (USAGE, "get"): {"200", "400", "404", *creator},
        (PAYOUTS, "get"): {"200", "400", *creator},  # 400: a malformed limit or offset
        (BALANCE, "get"): {"200", *creator},
        (SETTINGS, "get"): {"200", *creator},
        (SETTINGS, "put"): {"200", "400", "415", *creator},  # 415: a body that is not JSON
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert set(responses) == statuses, (path, method)
        for status in statuses - {"200"}:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error"
    params = {p["name"] for p in paths[EARNINGS]["get"]["parameters"]}
    assert params >= {"start", "end", "content", "limit", "offset"}
    assert {p["name"] for p in paths[USAGE]["get"]["parameters"]} >= {"event", "content"}
