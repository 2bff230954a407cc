"""The revenue dashboard at /admin/: who sees it, what it shows, its CSV exports and its cost."""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from analytics import reports
from analytics.services import mrr_movement_record
from tests.accounts.factories import StaffUserFactory, SuperuserFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # the dashboard caches its figures for a minute
    yield
    cache.clear()


def _at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _move(customer, sub, old, new, day, currency="usd", event=None):
    mrr_movement_record(
        stripe_customer_id=customer,
        stripe_subscription_id=sub,
        currency=currency,
        old_mrr=old,
        new_mrr=new,
        occurred_at=_at(day),
        source_event_id=event or f"evt_{customer}_{sub}_{day}_{new}",
    )


def _history():
    """usd: ada and bob subscribe in January, cy in March; bob expands and ada churns in
    March; one eur customer (fewer customers than usd, so usd is the default currency)."""
    _move("cus_ada", "sub_ada", 0, 10_000, date(2026, 1, 5))
    _move("cus_bob", "sub_bob", 0, 5_000, date(2026, 1, 20))
    _move("cus_bob", "sub_bob", 5_000, 8_000, date(2026, 3, 3))
    _move("cus_ada", "sub_ada", 10_000, 0, date(2026, 3, 10))
    _move("cus_cy", "sub_cy", 0, 2_000, date(2026, 3, 15))
    _move("cus_eu", "sub_eu", 0, 4_000, date(2026, 2, 1), currency="eur")


MARCH = {"start": "2026-03-01", "end": "2026-03-31", "currency": "usd"}


def _csv(response):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_non_staff_are_sent_to_the_login(client):
    client.force_login(UserFactory())
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_without_the_permission_get_the_plain_index(client):
    _history()
    client.force_login(StaffUserFactory(groups=["Affiliate manager"]))
    response = client.get("/admin/", MARCH)
    assert response.status_code == 200
    names = [t.name for t in response.templates]
    assert "admin/index.html" in names
    assert "admin/analytics/dashboard.html" not in names
    assert b"kpi-tiles" not in response.content
    assert b"Affiliates" in response.content  # the app list


def test_finance_sees_the_dashboard_with_the_app_list_under_it(client):
    _history()
    client.force_login(StaffUserFactory(groups=["Finance"]))
    response = client.get("/admin/", MARCH)
    assert response.status_code == 200
    assert "admin/analytics/dashboard.html" in [t.name for t in response.templates]
    board = response.context["board"]
    tiles = {tile.key: tile for tile in board.tiles}
    # End of March: bob 8,000 + cy 2,000; end of the previous 31 days (Jan 29 - Feb 28):
    # ada 10,000 + bob 5,000.
    assert (tiles["mrr"].value, tiles["mrr"].previous) == (10_000, 15_000)
    assert tiles["mrr"].text == "$100.00"
    assert tiles["mrr"].change_text == "-$50.00 (-33.3 %)"
    assert (tiles["arr"].value, tiles["active_customers"].value) == (120_000, 2)
    assert tiles["arpa"].value == 5_000
    # March: new 2,000 + expansion 3,000 - churn 10,000; the previous period: nothing.
    assert (tiles["net_new"].value, tiles["net_new"].previous) == (-5_000, 0)
    assert tiles["customer_churn_rate"].value == "0.5000"
    assert tiles["customer_churn_rate"].previous == "0.0000"
    assert tiles["customer_churn_rate"].trend == "up bad"
    assert tiles["customer_churn_rate"].change_text == "+50.00 pts"
    assert tiles["nrr"].value == "0.5333"  # (15,000 + 3,000 - 10,000) / 15,000
    content = response.content.decode()
    assert 'id="movements-chart" data-chart-spec="{&quot;type&quot;: &quot;bar&quot;' in content
    assert "/static/revenue_site/charts.js" in content
    # CSP: no script but the two files (the charts' data are attributes of their canvas)
    scripts = re.findall(r"<script[^>]*>", content)
    assert all(" src=" in script for script in scripts), scripts
    assert '<script src="/static/vendor/chartjs/chart.umd.min.js" defer>' in scripts
    assert 'id="app-list"' in content or "app-subscriptions" in content  # the app list stays


def test_the_picker_defaults_to_the_last_30_days_and_the_most_common_currency(client):
    _history()
    _move("cus_eu2", "sub_eu2", 0, 1_000, date(2026, 2, 2), currency="eur")
    _move("cus_eu3", "sub_eu3", 0, 1_000, date(2026, 2, 3), currency="eur")
    client.force_login(SuperuserFactory())
    response = client.get("/admin/")
    board = response.context["board"]
    today = timezone.now().date()
    assert (board.period.start, board.period.end) == (today - timedelta(days=29), today)
    assert board.currency == "eur"  # three active eur customers against two usd
    assert response.context["form"].initial["currency"] == "eur"


def test_movements_csv_has_the_report_numbers(client):
    _history()
    client.force_login(SuperuserFactory())
    rows = _csv(client.get("/admin/", {**MARCH, "export": "movements_by_month"}))
    expected = reports.movements_by_month(
        start=date(2025, 4, 1), end=date(2026, 3, 31), currency="usd"
    )
    assert [row["start"] for row in rows] == [m.start.isoformat() for m in expected]
    for row, movement in zip(rows, expected, strict=True):
        numbers = movement.as_dict()
        assert row == {k: "" if numbers[k] is None else str(numbers[k]) for k in row}
    (march,) = [row for row in rows if row["start"] == "2026-03-01"]
    assert (march["new"], march["expansion"], march["churn"], march["net_new"]) == (
        "2000",
        "3000",
        "10000",
        "-5000",
    )


def test_kpi_csv_lists_every_tile(client):
    _history()
    client.force_login(SuperuserFactory())
    rows = _csv(client.get("/admin/", {**MARCH, "export": "kpis"}))
    values = {row["metric"]: (row["value"], row["previous"], row["change"]) for row in rows}
    assert values["mrr"] == ("10000", "15000", "-5000")
    # the previous period (Jan 29 - Feb 28) kept all of its 15,000: NRR 1
    assert values["nrr"] == ("0.5333", "1.0000", "-0.4667")
    assert set(values) == {
        "mrr", "arr", "active_customers", "arpa", "net_new", "customer_churn_rate", "nrr",
        "usage_run_rate", "trial_conversion", "affiliate_roi",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-02-30"}, "start"),
        ({"start": "2026-03-10", "end": "2026-03-01"}, "end"),
        ({"start": "2020-01-01", "end": "2026-03-01"}, "start"),
        ({"currency": "zzz"}, "currency"),
    ],
)
def test_bad_picker_input_is_a_400_naming_the_field(client, params, field):
    _history()
    client.force_login(SuperuserFactory())
    page = client.get("/admin/", params)
    assert page.status_code == 400
    assert field in page.context["form"].errors
    export = client.get("/admin/", {**params, "export": "kpis"})
    assert export.status_code == 400
    assert field in export.json()["error"]["fields"]


def test_unknown_export_is_a_400_naming_it(client):
    client.force_login(SuperuserFactory())
    response = client.get("/admin/", {"export": "secrets"})
    assert response.status_code == 400
    assert "export" in response.json()["error"]["fields"]


def test_the_page_reads_a_bounded_number_of_queries_and_caches_the_figures(
    client, django_assert_max_num_queries
):
    """The count does not grow with the data (12 months of movements are read month by month:
    about 6 queries a month, see analytics.reports; the top payees 4 per payee type); a second
    load within a minute reads only the session, the user, the permissions and the queues."""
    _history()
    finance = StaffUserFactory(groups=["Finance"])
    client.force_login(finance)
    with django_assert_max_num_queries(150) as first:
        assert client.get("/admin/", MARCH).status_code == 200
    with django_assert_max_num_queries(20) as again:
        assert client.get("/admin/", MARCH).status_code == 200
    cache.clear()
    client.force_login(finance)  # sessions may live in the cache (Redis)
    for n in range(30):  # ten times the customers, same queries
        _move(f"cus_more{n}", f"sub_more{n}", 0, 1_000 + n, date(2026, 2 + n % 2, 1 + n % 20))
    with django_assert_max_num_queries(len(first.captured_queries)):
        assert client.get("/admin/", MARCH).status_code == 200
    assert len(again.captured_queries) < len(first.captured_queries)


def _ledger_history():
    """March: a paid subscription invoice of 10,000 and a 2,000 commission to an affiliate."""
    from ledger.chart import SystemAccount
    from ledger.services import Line, account_for_payee, ledger_post, system_account
    from tests.affiliates.factories import AffiliateFactory

    affiliate = AffiliateFactory(user__email="top.affiliate@example.com")
    ledger_post(
        idempotency_key="in_march",
        source="subscriptions.invoice_paid",
        posted_at=_at(date(2026, 3, 4)),
        lines=[
            Line.debit(system_account(SystemAccount.STRIPE_CLEARING), 10_000, "usd"),
            Line.credit(system_account(SystemAccount.REVENUE_SUBSCRIPTIONS), 10_000, "usd"),
        ],
    )
    payable = account_for_payee(payee_type="affiliate", payee_id=affiliate.pk)
    ledger_post(
        idempotency_key="commission_march",
        source="affiliates.commission",
        posted_at=_at(date(2026, 3, 5)),
        lines=[
            Line.debit(system_account(SystemAccount.COMMISSION_EXPENSE), 2_000, "usd"),
            Line.credit(payable, 2_000, "usd"),
        ],
    )
    return affiliate


def _as_csv(value):
    return "" if value is None else str(value)


def test_every_csv_equals_the_api(client):
    _history()
    affiliate = _ledger_history()
    client.force_login(StaffUserFactory(groups=["Finance"]))

    movements = client.get("/api/v1/analytics/movements", MARCH).json()
    (period, previous) = _csv(client.get("/admin/", {**MARCH, "export": "movements"}))
    assert period == {key: _as_csv(movements[key]) for key in period}
    assert previous["start"] == "2026-01-29"

    revenue = client.get("/api/v1/analytics/revenue", {**MARCH, "group_by": "none"}).json()
    rows = _csv(client.get("/admin/", {**MARCH, "export": "revenue"}))
    api_rows = revenue["rows"] + revenue["totals"]
    assert [row["stream"] for row in rows] == [row["stream"] for row in api_rows]
    for row, api_row in zip(rows, api_rows, strict=True):
        assert row == {key: _as_csv(api_row[key]) for key in row}
    (subscriptions,) = [row for row in rows if row["stream"] == "subscriptions"]
    assert (subscriptions["gross"], subscriptions["commissions"]) == ("10000", "2000")
    assert subscriptions["margin"] == "8000"

    cohorts = client.get(
        "/api/v1/analytics/cohorts", {"start": "2025-04-01", "end": "2026-03-31", "currency": "usd"}
    ).json()
    rows = _csv(client.get("/admin/", {**MARCH, "export": "cohorts"}))
    assert [row["cohort"] for row in rows] == [row["cohort"] for row in cohorts["rows"]]
    for row, api_row in zip(rows, cohorts["rows"], strict=True):
        assert row["customers"] == str(api_row["customers"])
        assert row["mrr"] == str(api_row["mrr"])
        for k, rate in enumerate(api_row["customer_retention"]):
            assert row[f"customer_retention_m{k}"] == _as_csv(rate)
        for k, rate in enumerate(api_row["revenue_retention"]):
            assert row[f"revenue_retention_m{k}"] == _as_csv(rate)

    (top,) = _csv(client.get("/admin/", {**MARCH, "export": "top_affiliates"}))
    assert top == {
        "rank": "1",
        "name": "top.affiliate@example.com",
        "payee_id": str(affiliate.pk),
        "earned": "2000",
    }
    assert _csv(client.get("/admin/", {**MARCH, "export": "top_creators"})) == []


def test_the_page_shows_streams_cohorts_and_leaders(client):
    _history()
    affiliate = _ledger_history()
    client.force_login(StaffUserFactory(groups=["Finance"]))
    response = client.get("/admin/", MARCH)
    content = response.content.decode()
    board = response.context["board"]
    assert board.unavailable == {}
    assert board.charts["streams"]["labels"] == [
        "subscriptions", "api_usage", "content", "marketplace", "affiliates",
    ]  # fmt: skip
    # net revenue 100.00 and margin 80.00 of subscriptions, in dollars on the chart
    assert [d["data"][0] for d in board.charts["streams"]["datasets"]] == ["100.00", "80.00"]
    movements = board.charts["movements"]
    assert movements["labels"][-1] == "2026-03" and len(movements["labels"]) == 12
    by_label = {d["label"]: d["data"][-1] for d in movements["datasets"]}
    assert by_label == {
        "MRR at month end": "100.00",
        "New": "20.00",
        "Expansion": "30.00",
        "Reactivation": "0.00",
        "Contraction": "0.00",
        "Churn": "-100.00",
    }
    # January's cohort (ada and bob): half the customers left by March, revenue 8,000/15,000
    (january,) = [row for row in board.heatmaps[0].rows if row["cohort"] == "2026-01"]
    assert [cell["text"] for cell in january["cells"][:3]] == ["100.00 %", "100.00 %", "50.00 %"]
    assert january["cells"][2]["css"] == "heat-5"
    assert f"/admin/affiliates/affiliate/{affiliate.pk}/change/" in content
    assert "top.affiliate@example.com" in content


def test_without_the_ledger_permission_the_ledger_panels_are_left_out(client):
    from django.contrib.auth.models import Permission

    _history()
    _ledger_history()
    analyst = StaffUserFactory()
    analyst.user_permissions.add(
        Permission.objects.get(content_type__app_label="analytics", codename="view_mrrmovement")
    )
    client.force_login(analyst)
    response = client.get("/admin/", MARCH)
    board = response.context["board"]
    assert board.tiles and "movements" in board.charts
    assert "streams" not in board.charts
    assert not {"revenue", "top_affiliates", "top_creators", "top_providers"} & set(board.tables)
    assert client.get("/admin/", {**MARCH, "export": "revenue"}).status_code == 403
    assert client.get("/api/v1/analytics/revenue", MARCH).status_code == 403  # the same rule


@pytest.mark.parametrize(
    ("value", "previous", "kind", "text", "trend"),
    [
        (15_000, 10_000, "money", "+$50.00 (+50.0 %)", "up good"),
        (0, -5_000, "money", "+$50.00 (+100.0 %)", "up good"),  # net new MRR back to 0
        (-5_000, 0, "money", "-$50.00", "down bad"),
        (3, 3, "int", "0 (0.0 %)", "flat"),
        ("0.0500", "0.1000", "rate", "-5.00 pts", "down good"),  # churn rate (up is bad)
        ("0.9000", None, "rate", "no comparison", "flat"),
    ],
)
def test_a_tile_says_how_it_changed(value, previous, kind, text, trend):
    from analytics.dashboard import Tile

    tile = Tile("x", "X", value, previous, kind, "usd", up_is_good=kind != "rate")
    assert (tile.change_text, tile.trend) == (text, trend)


def test_trial_conversion_and_affiliate_roi_tiles(client):
    from djstripe.models import Customer, Subscription

    from tests.affiliates.factories import CommissionFactory

    _history()
    trial_start = int(_at(date(2026, 3, 2)).timestamp())
    customer = Customer.objects.create(id="cus_trial", email="trial@example.com")
    for sub_id, status in (("sub_t1", "active"), ("sub_t2", "trialing"), ("sub_t3", "canceled")):
        Subscription.objects.create(
            id=sub_id,
            customer=customer,
            stripe_data={"id": sub_id, "status": status, "trial_start": trial_start},
        )
    CommissionFactory(base_amount=10_000, amount=2_000, paid_at_invoice=_at(date(2026, 3, 6)))
    client.force_login(SuperuserFactory())
    tiles = {tile.key: tile for tile in client.get("/admin/", MARCH).context["board"].tiles}
    # one of three March trials pays; none started in the previous period
    assert (tiles["trial_conversion"].value, tiles["trial_conversion"].previous) == (
        "0.3333",
        None,
    )
    assert tiles["affiliate_roi"].value == "5.0000"  # 10,000 referred for 2,000 commission
    assert tiles["affiliate_roi"].text == "5.00 : 1"
    assert tiles["affiliate_roi"].change_text == "no comparison"


def test_the_picker_offers_ranges_ending_today(client):
    from urllib.parse import parse_qs

    _history()
    client.force_login(SuperuserFactory())
    presets = dict(client.get("/admin/", MARCH).context["presets"])
    today = timezone.now().date()
    last_90 = parse_qs(presets["Last 90 days"])
    assert last_90 == {
        "start": [(today - timedelta(days=89)).isoformat()],
        "end": [today.isoformat()],
        "currency": ["usd"],
    }
    assert parse_qs(presets["Month to date"])["start"] == [today.replace(day=1).isoformat()]
    response = client.get(f"/admin/?{presets['Last 7 days']}")
    assert response.context["board"].period.days == 7
