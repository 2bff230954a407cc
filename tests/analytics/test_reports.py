"""analytics.reports: the metric functions of issue 13, against hand-computed figures.

The story (usd unless said), movements recorded through ``mrr_movement_record``:

    cus_a  Jan 5  sub a 0→1000 (new)       Jan 20 a 1000→1500 (expansion)
           Feb 10 a 1500→0 (churn)         Mar 3  a2 0→800 (reactivation)
    cus_b  Jan 10 sub b 0→2000 (new)       Feb 15 b2 0→500 (expansion)
           Feb 20 b 2000→0 (contraction: b2 keeps the customer at 500)
    cus_c  Feb 2  sub c 0→3000 (new)
    cus_e  Jan 7  sub e 0→999 (new, eur)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.core.cache import cache
from djstripe.models import Customer, Subscription

from analytics import reports
from analytics.reports import ReportError
from analytics.services import mrr_movement_record
from ledger.chart import SystemAccount
from ledger.services import Line, ledger_post, system_account

pytestmark = pytest.mark.django_db

STORY = [
    ("cus_a", "a", date(2026, 1, 5), 0, 1000),
    ("cus_b", "b", date(2026, 1, 10), 0, 2000),
    ("cus_a", "a", date(2026, 1, 20), 1000, 1500),
    ("cus_c", "c", date(2026, 2, 2), 0, 3000),
    ("cus_a", "a", date(2026, 2, 10), 1500, 0),
    ("cus_b", "b2", date(2026, 2, 15), 0, 500),
    ("cus_b", "b", date(2026, 2, 20), 2000, 0),
    ("cus_a", "a2", date(2026, 3, 3), 0, 800),
]


def _record(customer, sub, day, old, new, currency="usd", hour=12):
    return mrr_movement_record(
        stripe_customer_id=customer,
        stripe_subscription_id=sub,
        currency=currency,
        old_mrr=old,
        new_mrr=new,
        occurred_at=datetime.combine(day, time(hour), tzinfo=UTC),
        source_event_id=f"evt_{customer}_{sub}_{day.isoformat()}",
    )


@pytest.fixture
def story():
    kinds = [_record(*step).kind for step in STORY]
    assert kinds == [
        "new",
        "new",
        "expansion",
        "new",
        "churn",
        "expansion",
        "contraction",
        "reactivation",
    ]
    _record("cus_e", "e", date(2026, 1, 7), 0, 999, currency="eur")


def test_summary_at_the_end_of_the_day(story):
    jan = reports.summary(on=date(2026, 1, 31), currency="usd")
    assert jan.as_dict() == {
        "date": "2026-01-31",
        "currency": "usd",
        "mrr": 3500,
        "arr": 42_000,
        "active_customers": 2,
        "arpa": 1750,
        "usage_run_rate": 0,
    }
    # The day of a change counts it (the end of the day).
    assert reports.summary(on=date(2026, 1, 5), currency="usd").mrr == 1000
    before = reports.summary(on=date(2026, 1, 4), currency="USD")
    assert (before.mrr, before.active_customers, before.arpa) == (0, 0, None)
    # cus_a churned, b kept 500 through b2, c is new: 0 + 500 + 3000.
    feb = reports.summary(on=date(2026, 2, 28), currency="usd")
    assert (feb.mrr, feb.active_customers, feb.arpa) == (3500, 2, 1750)
    assert reports.summary(on=date(2026, 3, 31), currency="eur").mrr == 999


def test_movements_of_february(story):
    feb = reports.movements(start=date(2026, 2, 1), end=date(2026, 2, 28), currency="usd")
    assert feb.as_dict() == {
        "start": "2026-02-01",
        "end": "2026-02-28",
        "currency": "usd",
        "mrr_start": 3500,
        "mrr_end": 3500,
        "new": 3000,
        "expansion": 500,
        "contraction": 2000,
        "churn": 1500,
        "reactivation": 0,
        "net_new": 0,
        "customers_start": 2,
        "customers_churned": 1,
        "customer_churn_rate": "0.5000",
        "gross_revenue_churn": "1.0000",
        # (3500 + 500 - 2000 - 1500) / 3500 = 0.142857…
        "nrr": "0.1429",
        # ARPA at the end 1750 / (1/2 churned over 28 days, scaled to 365/12 days):
        # 1750 * 2 * 12 * 28 / 365 = 3221.9…
        "ltv": 3222,
        "quick_ratio": "1.0000",
    }


def test_rates_are_null_where_they_divide_by_zero(story):
    jan = reports.movements(start=date(2026, 1, 1), end=date(2026, 1, 31), currency="usd")
    assert (jan.mrr_start, jan.mrr_end, jan.new, jan.expansion) == (0, 3500, 3000, 500)
    assert jan.net_new == jan.mrr_end - jan.mrr_start
    assert jan.customers_start == 0
    assert jan.customer_churn_rate is None
    assert jan.gross_revenue_churn is None
    assert jan.nrr is None
    assert jan.ltv is None
    assert jan.quick_ratio is None


def test_movements_by_month_are_clipped_to_the_period(story):
    months = reports.movements_by_month(
        start=date(2026, 1, 15), end=date(2026, 3, 10), currency="usd"
    )
    assert [(m.start, m.end) for m in months] == [
        (date(2026, 1, 15), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 3, 1), date(2026, 3, 10)),
    ]
    assert [(m.mrr_start, m.mrr_end) for m in months] == [(3000, 3500), (3500, 3500), (3500, 4300)]
    assert [m.expansion for m in months] == [500, 500, 0]
    assert months[2].reactivation == 800
    assert sum(m.net_new for m in months) == months[-1].mrr_end - months[0].mrr_start


def test_cohorts_by_first_paid_month(story):
    result = reports.cohorts(start=date(2026, 1, 1), end=date(2026, 3, 31), currency="usd")
    assert result.as_dict() == {
        "currency": "usd",
        "months": ["2026-01", "2026-02", "2026-03"],
        "rows": [
            {
                "cohort": "2026-01",
                "customers": 2,
                "mrr": 3500,
                # Feb: a churned, b at 500; Mar: a reactivated at 800.
                "customer_retention": ["1.0000", "0.5000", "1.0000"],
                "revenue_retention": ["1.0000", "0.1429", "0.3714"],
            },
            {
                "cohort": "2026-02",
                "customers": 1,
                "mrr": 3000,
                "customer_retention": ["1.0000", "1.0000"],
                "revenue_retention": ["1.0000", "1.0000"],
            },
        ],
    }
    # The last month is measured at the end of `end`: on Mar 2 cus_a has not come back.
    clipped = reports.cohorts(start=date(2026, 1, 1), end=date(2026, 3, 2), currency="usd")
    assert clipped.rows[0].customer_retention == ["1.0000", "0.5000", "0.5000"]
    # A period starting in February leaves January's cohort out.
    later = reports.cohorts(start=date(2026, 2, 1), end=date(2026, 3, 31), currency="usd")
    assert [row.cohort for row in later.rows] == ["2026-02"]


def _trial(sub_id, customer, trial_start, status):
    Subscription.objects.create(
        id=sub_id,
        customer=customer,
        stripe_data={
            "id": sub_id,
            "status": status,
            "currency": "usd",
            "trial_start": int(datetime.combine(trial_start, time(9), tzinfo=UTC).timestamp()),
        },
    )


def test_trial_conversion():
    customer = Customer.objects.create(id="cus_t", email="t@example.com")
    _trial("sub_t1", customer, date(2026, 1, 3), "active")
    _trial("sub_t2", customer, date(2026, 1, 4), "canceled")  # paid once, then canceled
    _trial("sub_t3", customer, date(2026, 1, 5), "trialing")
    _trial("sub_t4", customer, date(2026, 1, 6), "canceled")  # canceled during the trial
    _trial("sub_t5", customer, date(2026, 2, 2), "active")  # outside the period
    _record("cus_t", "sub_t2", date(2026, 1, 20), 0, 900)

    result = reports.trial_conversion(start=date(2026, 1, 1), end=date(2026, 1, 31))
    assert result.as_dict() == {"trials_started": 4, "converted": 2, "rate": "0.5000"}
    empty = reports.trial_conversion(start=date(2025, 1, 1), end=date(2025, 1, 31))
    assert empty.as_dict() == {"trials_started": 0, "converted": 0, "rate": None}


def test_currencies_from_movements_and_the_ledger(story):
    cache.delete(reports.CURRENCIES_CACHE_KEY)
    assert reports.currencies() == ["eur", "usd"]
    ledger_post(
        idempotency_key="gbp-1",
        source="test",
        lines=[
            Line(system_account(SystemAccount.STRIPE_CLEARING), 500, "gbp"),
            Line(system_account(SystemAccount.REVENUE_CONTENT), -500, "gbp"),
        ],
    )
    assert reports.currencies() == ["eur", "usd"]  # cached for a few minutes
    cache.delete(reports.CURRENCIES_CACHE_KEY)
    assert reports.currencies() == ["eur", "gbp", "usd"]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: reports.summary(on=date(2026, 1, 1), currency="dollars"), "currency"),
        (
            lambda: reports.movements(start=date(2026, 2, 1), end=date(2026, 1, 1), currency="usd"),
            "start",
        ),
        (
            lambda: reports.cohorts(start=date(2026, 1, 1), end=date(2026, 1, 1), currency="u$d"),
            "currency",
        ),
        (lambda: reports.trial_conversion(start=date(2026, 2, 1), end=date(2026, 1, 1)), "start"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ReportError) as caught:
        call()
    assert caught.value.field == field


def test_rate_formatting():
    assert reports.rate(1, 3) == "0.3333"
    assert reports.rate(2, 3) == "0.6667"
    assert reports.rate(5, 1) == "5.0000"
    assert reports.rate(1, 0) is None
    assert reports.rate(-1, 8) == "-0.1250"


def _close(customer, month_start, status, currency, lines):
    from marketplace.models import Meter, UsageChargeLine, UsagePeriodClose

    next_month = (month_start.replace(day=28) + timedelta(days=4)).replace(day=1)
    close = UsagePeriodClose.objects.create(
        customer=customer,
        period_start=datetime.combine(month_start, time.min, tzinfo=UTC),
        period_end=datetime.combine(next_month, time.min, tzinfo=UTC),
        status=status,
        currency=currency,
        amount=sum(amount for _, amount in lines),
    )
    for source, amount in lines:
        UsageChargeLine.objects.create(
            period_close=close,
            meter=None if source else Meter.objects.get(code="api_calls"),
            source=source,
            reference=f"ref-{amount}" if source else "",
            quantity=amount,
            free_quantity=0,
            billable_quantity=amount,
            amount=amount,
            description="usage",
        )


def test_usage_run_rate_is_the_last_complete_months_billed_api_usage():
    from marketplace.models import UsagePeriodClose
    from tests.accounts.factories import UserFactory

    status = UsagePeriodClose.Status
    nov = date(2026, 11, 1)
    _close(UserFactory(), nov, status.PAID, "usd", [("", 4_000), ("content.royalties", 900)])
    _close(UserFactory(), nov, status.FINALIZED, "usd", [("", 2_500)])
    _close(UserFactory(), nov, status.RATING, "usd", [("", 7_000)])  # not billed yet
    _close(UserFactory(), nov, status.PAID, "eur", [("", 300)])
    _close(UserFactory(), date(2026, 10, 1), status.PAID, "usd", [("", 99_000)])
    # Every day of December reads November's billed API usage (the content line is not API).
    for day in (date(2026, 12, 1), date(2026, 12, 31)):
        assert reports.summary(on=day, currency="usd").usage_run_rate == 6_500
    assert reports.usage_run_rate(on=date(2026, 12, 3), currency="eur") == 300
    assert reports.usage_run_rate(on=date(2026, 11, 30), currency="usd") == 99_000
    assert reports.usage_run_rate(on=date(2027, 1, 1), currency="usd") == 0
