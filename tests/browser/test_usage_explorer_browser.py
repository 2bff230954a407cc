"""The staff usage explorer in a real browser: from the meters to a customer's usage, drawn by
the vendored Chart.js with no console errors."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace import services
from tests.accounts.factories import UserFactory
from tests.browser.conftest import staff_login, watch_problems

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_staff_explores_a_customers_usage_and_sees_the_chart(live_server, page):
    customer = UserFactory(email="heavy.user@example.com")
    base = (timezone.now() - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    events = [
        {
            "id": f"e{i}",
            "metric": "api_calls",
            "quantity": i + 1,
            "timestamp": (base + timedelta(minutes=17 * i)).isoformat(),
        }
        for i in range(6)
    ]
    services.usage_events_record(
        customer=customer, events=services.usage_batch_parse(payload={"events": events})
    )
    problems = watch_problems(page)
    staff_login(page, live_server)
    page.goto(f"{live_server.url}/admin/marketplace/meter/")
    page.click("#usage-explorer-link")
    page.fill("input[name=customer]", "heavy.user@example.com")
    page.select_option("select[name=meter]", label="api_calls")
    page.fill("input[name=start]", f"{base:%Y-%m-%d}")
    page.fill("input[name=end]", f"{base + timedelta(days=1):%Y-%m-%d}")
    page.select_option("select[name=group_by]", "hour")
    page.click("#usage-explorer-form input[type=submit]")

    page.wait_for_selector("#usage-total")
    assert "21" in page.inner_text("#usage-total")  # 1 + 2 + … + 6 calls
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.getElementById('usage-chart'))"
    )
    drawn = page.evaluate(
        """() => {
            const canvas = document.getElementById('usage-chart');
            const chart = Chart.getChart(canvas);
            const pixels = canvas.getContext('2d')
                .getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) painted++; }
            return {
                labels: chart.data.labels.length,
                total: chart.data.datasets[0].data.reduce((a, b) => a + (b || 0), 0),
                width: canvas.width,
                painted: painted,
            };
        }"""
    )
    assert drawn["labels"] == 48  # two days per hour
    assert drawn["total"] == 21
    assert drawn["width"] > 0 and drawn["painted"] > 0
    assert page.locator("#usage-buckets tbody tr").count() >= 2
    assert page.locator("#customer-api-keys").count() == 1
    assert problems == []
