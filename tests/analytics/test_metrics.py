import re

import pytest
from django.core.cache import cache
from djstripe.models import Customer, Subscription


def _subscription(sub_id, customer, status, unit_amount, quantity=1, currency="usd"):
    price = {
        "currency": currency,
        "type": "recurring",
        "billing_scheme": "per_unit",
        "unit_amount": unit_amount,
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
    }
    Subscription.objects.create(
        id=sub_id,
        customer=customer,
        stripe_data={
            "id": sub_id,
            "status": status,
            "currency": currency,
            "items": {"data": [{"price": price, "quantity": quantity}]},
        },
    )


def _gauge(text, name, currency):
    match = re.search(rf'^{name}{{currency="{currency}"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


@pytest.mark.django_db
def test_metrics_exposes_django_and_revenue_gauges(client):
    cache.clear()
    ada = Customer.objects.create(id="cus_ada", email="ada@example.com")
    bob = Customer.objects.create(id="cus_bob", email="bob@example.com")
    eve = Customer.objects.create(id="cus_eve", email="eve@example.com")
    _subscription("sub_1", ada, "active", 1_900, quantity=2)
    _subscription("sub_2", bob, "past_due", 5_000)
    _subscription("sub_3", eve, "trialing", 9_900)
    _subscription("sub_4", eve, "active", 2_500, currency="eur")

    response = client.get("/metrics")

    assert response.status_code == 200
    text = response.content.decode()
    assert "django_http_requests_total_by_method_total" in text
    assert "django_db_execute_total" in text or "django_db_new_connections_total" in text
    assert _gauge(text, "revenue_mrr", "usd") == 8_800
    assert _gauge(text, "revenue_arr", "usd") == 105_600
    assert _gauge(text, "revenue_active_customers", "usd") == 2
    assert _gauge(text, "revenue_arpa", "usd") == 4_400
    assert _gauge(text, "revenue_mrr", "eur") == 2_500


@pytest.mark.django_db
def test_metrics_token_guards_revenue_figures_when_set(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert response.status_code == 200
    assert b"revenue_mrr" in response.content or b"django_http" in response.content
