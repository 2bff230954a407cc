"""The revenue dashboard in a real browser: the staff console's home draws its charts with the
vendored Chart.js, the picker changes the range, and nothing errors in the console."""

from datetime import UTC, date, datetime

import pytest
from django.core.cache import cache

from analytics.services import mrr_movement_record
from tests.browser.conftest import ARTIFACTS, staff_login, watch_problems

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHART_STATE = """(id) => {
    const canvas = document.getElementById(id);
    const chart = Chart.getChart(canvas);
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) painted++; }
    return {
        labels: chart.data.labels,
        datasets: chart.data.datasets.map((d, i) => ({
            label: d.label,
            type: d.type || chart.config.type,
            data: d.data,
            // drawn size of the last month's element: a bar's height, a line point's y
            last: (() => {
                const el = chart.getDatasetMeta(i).data.at(-1);
                return el.base === undefined ? el.y : Math.round(Math.abs(el.base - el.y));
            })(),
        })),
        stacked: Boolean(chart.options.scales.y.stacked),
        width: canvas.width,
        painted: painted,
    };
}"""


def _move(customer, old, new, day):
    mrr_movement_record(
        stripe_customer_id=customer,
        stripe_subscription_id=f"sub_{customer}",
        currency="usd",
        old_mrr=old,
        new_mrr=new,
        occurred_at=datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
        source_event_id=f"evt_{customer}_{new}",
    )


def _wait_for_chart(page, canvas_id):
    page.wait_for_function(
        "(id) => window.Chart && Chart.getChart(document.getElementById(id))", arg=canvas_id
    )
    return page.evaluate(CHART_STATE, canvas_id)


def test_staff_reads_the_dashboard_and_changes_the_range(live_server, page):
    cache.clear()
    _move("cus_ada", 0, 10_000, date(2026, 1, 5))
    _move("cus_bob", 0, 5_000, date(2026, 1, 20))
    _move("cus_bob", 5_000, 8_000, date(2026, 3, 3))
    _move("cus_ada", 10_000, 0, date(2026, 3, 10))
    problems = watch_problems(page)
    staff_login(page, live_server)
    page.wait_for_selector("#revenue-dashboard")

    # The default range: the last 30 days, the charts drawn (12 months, nothing lately).
    first = _wait_for_chart(page, "movements-chart")
    assert len(first["labels"]) == 12
    assert first["width"] > 0 and first["painted"] > 0
    assert _wait_for_chart(page, "streams-chart")["labels"][0] == "subscriptions"
    assert page.locator(".kpi-tile").count() == 10  # 8 + trials converted + affiliate ROI

    # The picker: March 2026.
    page.fill("#id_start", "2026-03-01")
    page.fill("#id_end", "2026-03-31")
    page.click("#dashboard-show")
    page.wait_for_url("**start=2026-03-01**")
    page.wait_for_selector("#kpi-mrr")
    assert "2026-03-01 to 2026-03-31" in page.inner_text("#dashboard-period")
    assert "$80.00" in page.inner_text("#kpi-mrr .kpi-value")  # bob alone at the end of March
    drawn = _wait_for_chart(page, "movements-chart")
    assert drawn["labels"][-1] == "2026-03" and drawn["stacked"] is True
    series = {d["label"]: (d["type"], d["data"][-1]) for d in drawn["datasets"]}
    assert series["MRR at month end"] == ("line", 80)
    assert series["Expansion"] == ("bar", 30) and series["Churn"] == ("bar", -100)
    drawn_size = {d["label"]: d["last"] for d in drawn["datasets"]}
    assert drawn_size["Churn"] > drawn_size["Expansion"] > 0  # -100 and +30 as bars
    assert drawn_size["New"] == 0
    assert page.locator(".cohort-heatmap td.heat-5").count() >= 1  # January's cohort at M2
    page.locator("#dashboard-movements").scroll_into_view_if_needed()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "revenue_dashboard_march.png"), full_page=True)

    # A CSV export from the page's own link.
    with page.expect_download() as download:
        page.click("#export-movements_by_month")
    lines = download.value.path().read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("start,end,mrr_start,new,")
    assert lines[-1].startswith("2026-03-01,2026-03-31,15000,0,3000,")
    assert problems == []
