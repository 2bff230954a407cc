"""Daily MRR snapshots: what the beat task stores, that the reports read them (and agree with
the movements), and that a late movement is seen at once and recomputed by the next run."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import psycopg2
import pytest
from django.db import connection
from django.utils import timezone

from analytics import reports
from analytics.models import MRRMovement, MRRSnapshot
from analytics.services import mrr_movement_record, mrr_snapshots_compute
from analytics.tasks import snapshots_compute
from tests.analytics.test_reports import STORY

pytestmark = pytest.mark.django_db
MAR1 = datetime(2026, 3, 1, tzinfo=UTC)
MAR15 = datetime(2026, 3, 15, 6, tzinfo=UTC)


def _record(customer, sub, day, old, new, currency="usd", event=None):
    return mrr_movement_record(
        stripe_customer_id=customer,
        stripe_subscription_id=sub,
        currency=currency,
        old_mrr=old,
        new_mrr=new,
        occurred_at=datetime.combine(day, time(12), tzinfo=UTC),
        source_event_id=event or f"evt_{customer}_{sub}_{day.isoformat()}",
    )


@pytest.fixture
def story():
    for step in STORY:
        _record(*step)
    _record("cus_e", "e", date(2026, 1, 7), 0, 999, currency="eur")
    # As if the webhooks had recorded them when they happened, before the task's runs.
    MRRMovement.objects.update(created_at=MAR1)


def _reports():
    """Every figure the reports give over the story, as plain data."""
    periods = [
        (date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 1, 15), date(2026, 3, 14)),
        (date(2026, 2, 10), date(2026, 2, 10)),
    ]
    return {
        "summaries": [
            reports.summary(on=date(2026, 1, d), currency="usd").as_dict() for d in (4, 5, 31)
        ]
        + [reports.summary(on=date(2026, 3, 14), currency="eur").as_dict()],
        "movements": [
            reports.movements(start=s, end=e, currency="usd").as_dict() for s, e in periods
        ],
        "cohorts": [
            reports.cohorts(start=s, end=e, currency="usd").as_dict()
            for s, e in [*periods, (date(2026, 1, 1), date(2026, 3, 14))]
        ],
        "by_month": [
            m.as_dict()
            for m in reports.movements_by_month(
                start=date(2026, 1, 3), end=date(2026, 3, 14), currency="usd"
            )
        ],
    }


def test_the_task_stores_every_completed_day(story):
    run = mrr_snapshots_compute(now=MAR15)
    assert run.days == {
        "eur": (date(2026, 1, 7), date(2026, 3, 14)),
        "usd": (date(2026, 1, 5), date(2026, 3, 14)),
    }
    usd = {row.date: row for row in MRRSnapshot.objects.filter(currency="usd")}
    assert len(usd) == (date(2026, 3, 14) - date(2026, 1, 5)).days + 1
    jan31 = usd[date(2026, 1, 31)]
    assert (jan31.mrr, jan31.active_customers, jan31.new, jan31.churn) == (3500, 2, 0, 0)
    feb10 = usd[date(2026, 2, 10)]
    assert (feb10.mrr, feb10.churn, feb10.customers_churned) == (5000, 1500, 1)
    feb20 = usd[date(2026, 2, 20)]
    assert (feb20.mrr, feb20.active_customers, feb20.contraction) == (3500, 2, 2000)
    # Nothing new: the next run writes nothing.
    assert mrr_snapshots_compute(now=MAR15 + timedelta(hours=1)).days == {}
    # A day later, one more day.
    again = mrr_snapshots_compute(now=MAR15 + timedelta(days=1))
    assert again.days["usd"] == (date(2026, 3, 15), date(2026, 3, 15))


def test_reports_read_the_snapshots_and_agree_with_the_movements(story):
    live = _reports()
    mrr_snapshots_compute(now=MAR15)
    assert _reports() == live
    # They really come from the stored rows: a doctored snapshot shows through.
    MRRSnapshot.objects.filter(currency="usd", date=date(2026, 1, 31)).update(mrr=123)
    assert reports.summary(on=date(2026, 1, 31), currency="usd").mrr == 123


def test_reading_twelve_months_from_snapshots_takes_few_queries(
    story, django_assert_max_num_queries
):
    mrr_snapshots_compute(now=MAR15)
    with django_assert_max_num_queries(4):
        months = reports.movements_by_month(
            start=date(2026, 1, 1), end=date(2026, 3, 14), currency="usd"
        )
    assert [m.net_new for m in months] == [3500, 0, 800 - 0]
    with django_assert_max_num_queries(5):
        reports.summary(on=date(2026, 2, 28), currency="usd")


def test_a_late_movement_is_seen_at_once_and_recomputed(story):
    mrr_snapshots_compute(now=MAR15)
    # A webhook for Feb 5 is processed late: cus_c buys a second subscription on Feb 5.
    late = _record("cus_d", "d", date(2026, 2, 5), 0, 400)
    MRRMovement.objects.filter(pk=late.pk).update(created_at=MAR15 + timedelta(minutes=30))
    assert reports.summary(on=date(2026, 2, 28), currency="usd").mrr == 3500 + 400
    feb = reports.movements(start=date(2026, 2, 1), end=date(2026, 2, 28), currency="usd")
    assert (feb.new, feb.net_new) == (3000 + 400, 400)
    # Before the recompute, the stored Feb 28 still says 3500 ...
    assert MRRSnapshot.objects.get(currency="usd", date=date(2026, 2, 28)).mrr == 3500
    run = mrr_snapshots_compute(now=MAR15 + timedelta(hours=1))
    # ... the next run recomputes from the late movement's day.
    assert run.days["usd"] == (date(2026, 2, 5), date(2026, 3, 14))
    assert MRRSnapshot.objects.get(currency="usd", date=date(2026, 2, 28)).mrr == 3900
    assert MRRSnapshot.objects.get(currency="usd", date=date(2026, 2, 4)).mrr == 6500
    assert reports.movements(start=date(2026, 2, 1), end=date(2026, 2, 28), currency="usd") == feb
    # cus_d joins February's cohort, late or not.
    cohorts = reports.cohorts(start=date(2026, 2, 1), end=date(2026, 2, 28), currency="usd")
    assert [(row.cohort, row.customers, row.mrr) for row in cohorts.rows] == [("2026-02", 2, 3400)]


def test_the_beat_task_runs_the_service_a_quarter_at_a_time(story, celery_eager):
    result = snapshots_compute.delay().get()
    # 92 days from the first movement's day; the next run carries on from there.
    assert result["usd"] == ["2026-01-05", "2026-04-06"]
    assert MRRSnapshot.objects.filter(currency="usd", date=date(2026, 2, 28)).get().mrr == 3500
    assert snapshots_compute.delay().get()["usd"] == ["2026-04-07", "2026-07-07"]
    # Meanwhile the reports replay the days not stored yet.
    assert reports.summary(on=date(2026, 11, 30), currency="usd").mrr == 3500 + 800


def test_movements_created_just_before_a_run_are_in_its_snapshots(story):
    """A bulk load (or ``analytics_rebuild --apply``) right before the task's run: the run saw
    every committed movement, so the reports read its snapshots at once (they used to treat
    the last ten minutes' movements as late and replay the whole history)."""
    MRRMovement.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    mrr_snapshots_compute(now=timezone.now())
    MRRSnapshot.objects.filter(currency="usd", date=date(2026, 1, 31)).update(mrr=123)
    assert reports.summary(on=date(2026, 1, 31), currency="usd").mrr == 123


@pytest.mark.skipif(connection.vendor != "postgresql", reason="open transactions: PostgreSQL")
def test_a_movement_of_a_transaction_open_during_the_run_is_late(story):
    """Another session has written a movement but not committed when the run reads: the run
    cannot see it, so the reports must treat it as late once it commits."""
    settings = connection.settings_dict
    other = psycopg2.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        password=settings["PASSWORD"],
    )
    try:
        with other.cursor() as cursor:  # psycopg2 opens the transaction with the first query
            cursor.execute(
                "INSERT INTO analytics_mrrmovement (stripe_customer_id, stripe_subscription_id,"
                " kind, old_mrr, new_mrr, currency, occurred_at, source_event_id, created_at)"
                " VALUES ('cus_open', 'sub_open', 'new', 0, 400, 'usd',"
                " '2026-02-05 12:00+00', 'evt_open', clock_timestamp())"
            )
        mrr_snapshots_compute(now=timezone.now())
        assert reports.summary(on=date(2026, 2, 28), currency="usd").mrr == 3500
        other.commit()
        # Committed after the run read: the snapshots from Feb 5 on are stale, reports replay.
        assert MRRSnapshot.objects.get(currency="usd", date=date(2026, 2, 28)).mrr == 3500
        assert reports.summary(on=date(2026, 2, 28), currency="usd").mrr == 3500 + 400
        run = mrr_snapshots_compute(now=timezone.now())
        assert run.days["usd"][0] == date(2026, 2, 5)
        assert MRRSnapshot.objects.get(currency="usd", date=date(2026, 2, 28)).mrr == 3900
    finally:  # committed outside this test's transaction: not rolled back with it
        other.rollback()
        with other.cursor() as cursor:
            cursor.execute("DELETE FROM analytics_mrrmovement WHERE source_event_id = 'evt_open'")
        other.commit()
        other.close()
