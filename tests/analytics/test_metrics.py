"""/metrics: the business gauges agree with the analytics API and `manage.py metrics`."""

import io
import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from analytics.services import mrr_movement_record
from ledger.models import Account, PayoutBatch
from marketplace import services as usage
from subscriptions.models import WebhookEvent
from tests.accounts.factories import StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # the collector caches its figures for 30 s
    yield
    cache.clear()


def _gauge(text, name, **labels):
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}{{{selector}}} (\S+)$" if labels else rf"^{name} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


def _move(customer, old, new, at, currency="usd"):
    mrr_movement_record(
        stripe_customer_id=customer,
        stripe_subscription_id=f"sub_{customer}",
        currency=currency,
        old_mrr=old,
        new_mrr=new,
        occurred_at=at,
        source_event_id=f"evt_{customer}_{new}_{at:%Y%m%d%H}",
    )


def _revenue_history():
    now = timezone.now()
    long_ago = now - timedelta(days=90)
    _move("cus_ada", 0, 1_900 * 2, long_ago)
    _move("cus_bob", 0, 5_000, long_ago)
    _move("cus_cy", 0, 3_000, long_ago)
    _move("cus_cy", 3_000, 0, now - timedelta(days=3))  # churned in the last 30 days
    _move("cus_dee", 0, 7_000, long_ago)
    _move("cus_dee", 7_000, 0, now - timedelta(days=45))  # churned before them
    _move("cus_eu", 0, 2_500, long_ago, currency="eur")


def test_metrics_exposes_django_and_revenue_gauges(client):
    _revenue_history()

    response = client.get("/metrics")

    assert response.status_code == 200
    text = response.content.decode()
    assert "django_http_requests_total_by_method_total" in text
    assert "django_db_execute_total" in text or "django_db_new_connections_total" in text
    assert _gauge(text, "revenue_mrr", currency="usd") == 8_800
    assert _gauge(text, "revenue_arr", currency="usd") == 105_600
    assert _gauge(text, "revenue_active_customers", currency="usd") == 2
    assert _gauge(text, "revenue_arpa", currency="usd") == 4_400
    assert _gauge(text, "revenue_churned_customers_30d", currency="usd") == 1
    assert _gauge(text, "revenue_mrr", currency="eur") == 2_500
    assert _gauge(text, "revenue_churned_customers_30d", currency="eur") == 0


def test_metrics_api_and_command_agree(client):
    _revenue_history()
    today = datetime.now(tz=UTC).date()
    text = client.get("/metrics").content.decode()
    client.force_login(StaffUserFactory(groups=["Finance"]))
    out = io.StringIO()
    call_command("metrics", "--date", today.isoformat(), "--json", stdout=out)
    printed = {row["currency"]: row for row in map(json.loads, out.getvalue().splitlines())}
    assert set(printed) == {"eur", "usd"}
    for currency, line in printed.items():
        api = client.get(
            "/api/v1/analytics/summary", {"date": today.isoformat(), "currency": currency}
        ).json()
        assert api == line
        for field in ("mrr", "arr", "active_customers", "arpa"):
            assert _gauge(text, f"revenue_{field}", currency=currency) == api[field], field
        movements = client.get(
            "/api/v1/analytics/movements",
            {
                "start": (today - timedelta(days=29)).isoformat(),
                "end": today.isoformat(),
                "currency": currency,
            },
        ).json()
        assert (
            _gauge(text, "revenue_churned_customers_30d", currency=currency)
            == movements["customers_churned"]
        )


def test_metrics_report_usage_webhook_inbox_and_payout_batches(client):
    customer = UserFactory()
    base = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    events = [
        {"id": f"e{i}", "metric": "api_calls", "quantity": 1, "timestamp": base.isoformat()}
        for i in range(5)
    ]
    usage.usage_events_record(
        customer=customer, events=usage.usage_batch_parse(payload={"events": events})
    )
    for n, (status, age) in enumerate(
        [("received", 120), ("processing", 30), ("failed", 600), ("failed", 5), ("succeeded", 900)]
    ):
        event = WebhookEvent.objects.create(
            stripe_event_id=f"evt_{n}",
            type="invoice.paid",
            stripe_created=timezone.now(),
            payload={},
            status=status,
        )
        WebhookEvent.objects.filter(pk=event.pk).update(
            received_at=timezone.now() - timedelta(seconds=age)
        )
    for day, status in ((1, "completed"), (2, "completed"), (3, "failed")):
        PayoutBatch.objects.create(
            payee_type=Account.PayeeType.AFFILIATE, as_of=date(2026, 1, day), status=status
        )

    text = client.get("/metrics").content.decode()

    assert _gauge(text, "usage_events_ingested_total", meter="api_calls") == 5
    lag = _gauge(text, "webhook_inbox_lag_seconds")
    assert 120 <= lag < 180  # the oldest waiting one; failed and succeeded ones do not wait
    assert _gauge(text, "webhook_inbox_failed_events") == 2
    assert _gauge(text, "payout_batches", status="completed") == 2
    assert _gauge(text, "payout_batches", status="failed") == 1
    assert _gauge(text, "payout_batches", status="draft") == 0


def test_an_empty_inbox_has_no_lag(client):
    text = client.get("/metrics").content.decode()
    assert _gauge(text, "webhook_inbox_lag_seconds") == 0
    assert _gauge(text, "webhook_inbox_failed_events") == 0


def test_metrics_token_guards_revenue_figures_when_set(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert response.status_code == 200
    assert b"revenue_mrr" in response.content or b"django_http" in response.content


def test_the_grafana_dashboard_charts_every_business_gauge(client):
    """Every metric family the analytics collector exports has a panel in the dashboard that
    docker-compose provisions (deploy/grafana/dashboards/)."""
    from pathlib import Path

    from analytics.metrics import RevenueCollector

    _revenue_history()
    families = {family.name for family in RevenueCollector().collect()}
    assert families >= {
        "revenue_mrr", "revenue_arr", "revenue_active_customers", "revenue_churned_customers_30d",
        "usage_events_ingested", "webhook_inbox_lag_seconds", "webhook_inbox_failed_events",
        "payout_batches",
    }  # fmt: skip
    folder = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
    exprs = " ".join(
        target["expr"]
        for path in folder.glob("*.json")
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    )
    assert {name for name in families if not re.search(rf"\b{name}", exprs)} == set()
