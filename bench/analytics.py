"""Analytics at scale: are the summary, 12 months of movements, the dashboard and the big admin
changelists fast enough with 1M subscriptions, 5M MRR movements and 10M usage events?

Against same-run baselines (the targets of issue 13 in brackets), on PostgreSQL, in this process
(Django's test client for the pages, DEBUG off, a staff superuser logged in):
- baseline: bare SQL ``SELECT currency, SUM(new_mrr - old_mrr) FROM analytics_mrrmovement …
  GROUP BY currency``, up to the end of the day (what MRR at a date is) and over the 12 months;
- ``analytics.reports.summary`` for yesterday and today (<= 3x the bare SUM up to that date);
- ``analytics.reports.movements`` and ``movements_by_month`` over the 12 complete months
  before this one (<= 1.5x the bare SUM over the range), from the daily snapshots, whose
  computation (``analytics.services.mrr_snapshots_compute``, all days) is timed separately first;
- ``GET /admin/`` (the dashboard) as a staff user (< 300 ms);
- the admin changelists of dj-stripe's Subscription mirror (1M rows), the subscription states
  (1M), the marketplace usage events (10M) (< 300 ms each) and the SQL they ran: no
  ``COUNT(*)`` over a whole big table.

The reports and the dashboard are timed cold (Django's cache cleared before each call: today's
live figures are cached briefly) and warm. Each figure is the median of ``--repeat`` calls after
one warm-up call.

Data (``bench/analytics_support/data.py``): generated in SQL once into ``--database-url``
(default ``postgres://postgres@127.0.0.1:5432/ras_abench``, created and migrated if missing) and
reused by later runs (a marker table records each part; ``--fresh`` drops the database first).
Generation takes minutes; its time is printed (from the marker when reused).

Run: ``.venv/bin/python bench/analytics.py [--subscriptions 1000000] [--usage-events 10000000]
[--repeat 7] [--fresh]``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from bench.common import ensure_database  # noqa: E402
from bench.common.report import record  # noqa: E402

TODAY_ROWS = 7000  # movements landing today, for the live part of today's summary
BIG_TABLES = (
    "djstripe_subscription",
    "djstripe_customer",
    "subscriptions_subscriptionstate",
    "analytics_mrrmovement",
    "marketplace_usageevent",
    "marketplace_usageeventkey",
    "marketplace_usagerollup",
)


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def timed(
    fn: Callable[[], Any], repeat: int, before: Callable[[], None] | None = None
) -> list[float]:
    if before:
        before()
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        if before:
            before()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def unbounded_counts(sql_list: list[str]) -> list[str]:
    """The COUNT queries over a big table without a WHERE (or LIMIT subquery)."""
    bad = []
    for sql in sql_list:
        lowered = sql.lower()
        if "count(" not in lowered:
            continue
        big = any(f'"{t}"' in lowered or f" {t} " in lowered for t in BIG_TABLES)
        if big and " where " not in lowered and " limit " not in lowered:
            bad.append(sql)
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=1_000_000)
    parser.add_argument("--usage-events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7, help="timed calls per figure")
    parser.add_argument("--currency", default="usd")
    parser.add_argument("--fresh", action="store_true", help="drop the database first")
    parser.add_argument(
        "--generate-only", action="store_true", help="generate the data (if missing) and stop"
    )
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/ras_abench")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # figures as they come

    ensure_database(args.database_url, fresh=args.fresh)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "revenue_site.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_hex(24),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
        "DJANGO_STATIC_MANIFEST": "0",  # pages rendered in-process, no collectstatic run
        "DATABASE_URL": args.database_url,
    }
    env.pop("REDIS_URL", None)
    os.environ.clear()
    os.environ.update(env)
    t0 = time.perf_counter()
    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "--noinput"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    print(f"analytics_migrate  {time.perf_counter() - t0:.1f}s")

    import django

    django.setup()
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from bench.analytics_support import data
    from marketplace.models import Meter

    meter = Meter.objects.get(code="api_calls")
    parts = data.ensure(
        connection,
        subscriptions=args.subscriptions,
        usage_events=args.usage_events,
        meter_id=meter.pk,
        log=print,
    )
    for part, (rows, seconds, detail, now) in parts.items():
        when = "this run" if now else "an earlier run"
        print(f"analytics_data_{part}  rows={rows}  generated in {seconds:.0f}s ({when})  {detail}")
    with connection.cursor() as cursor:
        sizes = {}
        for table in BIG_TABLES:
            cursor.execute(
                "SELECT CASE WHEN c.relkind = 'p' THEN (SELECT COALESCE(sum(GREATEST("
                "p.reltuples, 0)), 0) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid"
                " WHERE i.inhparent = c.oid) ELSE GREATEST(c.reltuples, 0) END::bigint"
                " FROM pg_class c WHERE c.oid = %s::regclass",
                [table],
            )
            sizes[table] = int(cursor.fetchone()[0])
    print("analytics_data_sizes  " + "  ".join(f"{t}~{n}" for t, n in sizes.items()))
    if args.generate_only:
        return

    # Consistency of the generated data: per currency, the movements sum to the states' MRR.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT currency, SUM(new_mrr - old_mrr) FROM analytics_mrrmovement"
            " GROUP BY currency ORDER BY currency"
        )
        moved = dict(cursor.fetchall())
        cursor.execute(
            "SELECT currency, SUM(mrr) FROM subscriptions_subscriptionstate"
            " GROUP BY currency ORDER BY currency"
        )
        states = dict(cursor.fetchall())
    print(
        f"analytics_data_check  movements={moved}  states={states}  "
        f"{'OK (sum of deltas = sum of states MRR)' if moved == states else 'MISMATCH'}"
    )

    today = datetime.now(tz=UTC).date()
    yesterday = today - timedelta(days=1)
    this_month = today.replace(day=1)
    range_end = this_month - timedelta(days=1)
    range_start = (this_month - timedelta(days=366)).replace(day=1)
    if (range_end.year - range_start.year) * 12 + range_end.month - range_start.month != 11:
        range_start = date(this_month.year - 1, this_month.month, 1)

    def day_start(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=UTC)

    def bare_sum_to(d: date) -> Callable[[], Any]:
        def run() -> Any:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT currency, SUM(new_mrr - old_mrr) FROM analytics_mrrmovement"
                    " WHERE occurred_at < %s GROUP BY currency",
                    [day_start(d + timedelta(days=1))],
                )
                return cursor.fetchall()

        return run

    def bare_sum_range() -> Any:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT currency, SUM(new_mrr - old_mrr) FROM analytics_mrrmovement"
                " WHERE occurred_at >= %s AND occurred_at < %s GROUP BY currency",
                [day_start(range_start), day_start(range_end + timedelta(days=1))],
            )
            return cursor.fetchall()

    repeat = args.repeat
    base_to = median_ms(timed(bare_sum_to(yesterday), repeat))
    base_range = median_ms(timed(bare_sum_range, repeat))
    print(
        f"analytics_baseline  bare SUM to {yesterday}: {base_to:.0f}ms  "
        f"over {range_start}..{range_end}: {base_range:.0f}ms"
    )

    try:
        from analytics import reports
    except ImportError:
        reports = None  # type: ignore[assignment]
        print("analytics_reports  SKIPPED: analytics.reports is not on this branch yet")

    if reports is not None:
        _reports_measure(
            reports=reports,
            connection=connection,
            cache=cache,
            currency=args.currency,
            repeat=repeat,
            today=today,
            yesterday=yesterday,
            range_start=range_start,
            range_end=range_end,
            base_to=base_to,
            base_range=base_range,
            bare_to=bare_sum_to,
        )

    staff, _ = User.objects.get_or_create(
        email="bench-analytics-staff@example.com",
        defaults={"is_staff": True, "is_superuser": True, "name": "Bench staff"},
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)

    def page(url: str) -> Callable[[], Any]:
        def run() -> Any:
            response = client.get(url, secure=True)
            assert response.status_code == 200, (url, response.status_code)
            return response

        return run

    _dashboard_parts(cache=cache, user=staff)
    for label, url, target in (
        ("dashboard", "/admin/", 300),
        ("changelist_djstripe_subscription", "/admin/djstripe/subscription/", 300),
        ("changelist_subscription_state", "/admin/subscriptions/subscriptionstate/", 300),
        ("changelist_usage_events", "/admin/marketplace/usageevent/", 300),
        (
            "changelist_usage_events_month",
            f"/admin/marketplace/usageevent/?month={today:%Y-%m}",
            300,
        ),
        (
            "changelist_usage_events_customer",
            "/admin/marketplace/usageevent/?q=bench-usage-7%40example.com",
            300,
        ),
        (
            "changelist_djstripe_subscription_search",
            "/admin/djstripe/subscription/?q=sub_B00000777",
            300,
        ),
        (
            "changelist_subscription_state_active",
            "/admin/subscriptions/subscriptionstate/?status__exact=active",
            300,
        ),
        ("changelist_ledger_entries", "/admin/ledger/entry/", 300),
    ):
        try:
            page(url)()
        except AssertionError as error:
            print(f"analytics_{label}  SKIPPED ({error})")
            continue
        cold = median_ms(timed(page(url), repeat, before=cache.clear))
        warm = median_ms(timed(page(url), repeat))
        with CaptureQueriesContext(connection) as queries:
            page(url)()
        statements = [q["sql"] for q in queries.captured_queries]
        bad = unbounded_counts(statements)
        print(
            f"analytics_{label}  GET {url}  cold={cold:.0f}ms warm={warm:.0f}ms  "
            f"queries={len(statements)}  unbounded COUNT={len(bad)}  "
            f"(target < {target} ms, no unbounded COUNT)  "
            f"{verdict(max(cold, warm) < target and not bad)}"
        )
        record(
            script="analytics.py",
            name=f"{label} (cold cache)",
            value=cold,
            unit="ms",
            target_value=target,
            higher_is_better=False,
        )
        for sql in bad:
            print(f"    unbounded: {sql[:200]}")


def _dashboard_parts(*, cache: Any, user: Any) -> None:
    """Where a cold dashboard spends its time: each panel built alone, after a cache clear."""
    try:
        from analytics import dashboard
    except ImportError:
        return
    today = datetime.now(tz=UTC).date()
    parts: dict[str, float] = {}
    for _ in range(2):  # the first pass pays the process's one-time costs (URL resolver)
        cache.clear()
        _dashboard_pass(dashboard, parts, today=today, user=user)
    print(
        "analytics_dashboard_parts  cold, each alone: "
        + "  ".join(f"{name}={seconds * 1000:.0f}ms" for name, seconds in parts.items())
    )


def _dashboard_pass(dashboard: Any, parts: dict[str, float], *, today: date, user: Any) -> None:
    t = time.perf_counter()
    options = dashboard.currencies()
    parts["currencies"] = time.perf_counter() - t
    period = dashboard.Period(start=today - timedelta(days=dashboard.DEFAULT_DAYS - 1), end=today)
    t = time.perf_counter()
    currency = dashboard.most_common_currency(options=options, on=period.end) or ""
    parts["most_common_currency"] = time.perf_counter() - t
    board = dashboard.Dashboard(
        period=period, previous=period.previous(), window=period.chart_window(), currency=currency
    )
    for name, build, _permission in dashboard.PANELS:
        t = time.perf_counter()
        build(board)
        parts[name] = time.perf_counter() - t
    t = time.perf_counter()
    list(dashboard.queues.queues_for(user=user))
    parts["queues"] = time.perf_counter() - t


def _snapshots(*, compute: Callable[[], Any], connection: Any) -> None:
    """The snapshots of every day, computed (and timed) once per schema of the analytics app:
    when its latest migration differs from the one they were computed under, the derived
    tables (every analytics model but the movements) are emptied and computed again."""
    from django.apps import apps

    from bench.analytics_support import data

    with connection.cursor() as cursor:
        cursor.execute("SELECT max(name) FROM django_migrations WHERE app = 'analytics'")
        schema = cursor.fetchone()[0]
        found = data.marker_get(cursor, "snapshots")
    if found is not None and found[2].get("schema") == schema:
        t = time.perf_counter()
        compute()
        print(
            f"analytics_snapshots  computed all days in {found[1]:.1f}s (an earlier run, schema "
            f"{schema}); this run's catch-up {time.perf_counter() - t:.1f}s"
        )
        return
    derived = [
        model
        for model in apps.get_app_config("analytics").get_models()
        if model.__name__ != "MRRMovement"
    ]
    for model in derived:
        model.objects.all().delete()
    t = time.perf_counter()
    compute()
    seconds = time.perf_counter() - t
    with connection.cursor() as cursor:
        data._marker_set(cursor, "snapshots", 0, seconds, f'{{"schema": "{schema}"}}')
    print(
        f"analytics_snapshots  computed all days in {seconds:.1f}s (this run, schema {schema}; "
        f"emptied first: {', '.join(m.__name__ for m in derived)})"
    )


def _reports_measure(
    *,
    reports: Any,
    connection: Any,
    cache: Any,
    currency: str,
    repeat: int,
    today: date,
    yesterday: date,
    range_start: date,
    range_end: date,
    base_to: float,
    base_range: float,
    bare_to: Callable[[date], Callable[[], Any]],
) -> None:
    from django.db import transaction

    # Snapshots first, timed: every completed day not snapshotted yet, in one go (as
    # `analytics_rebuild --snapshots` does; the hourly beat task writes at most 92 days per run).
    from analytics.services import mrr_snapshots_compute

    _snapshots(compute=mrr_snapshots_compute, connection=connection)

    def summary_line(label: str, on: date) -> None:
        base = median_ms(timed(bare_to(on), repeat)) if on != yesterday else base_to
        cold = median_ms(
            timed(lambda: reports.summary(on=on, currency=currency), repeat, cache.clear)
        )
        warm = median_ms(timed(lambda: reports.summary(on=on, currency=currency), repeat))
        result = reports.summary(on=on, currency=currency)
        expected = dict(bare_to(on)()).get(currency, 0)
        ratio = cold / base
        print(
            f"analytics_summary_{label}  on={on} {currency}  bare_sum={base:.0f}ms  "
            f"summary cold={cold:.1f}ms warm={warm:.1f}ms  ratio={ratio:.2f}  "
            f"(target <= 3x)  {verdict(ratio <= 3)}  mrr={result.mrr} "
            f"{'= bare SUM' if result.mrr == expected else f'!= bare SUM {expected}: MISMATCH'}  "
            f"active_customers={result.active_customers}"
        )
        record(
            script="analytics.py",
            name=f"summary, {label}",
            value=cold,
            unit="ms",
            baseline=base,
            target_ratio=3,
            higher_is_better=False,
        )

    summary_line("yesterday", yesterday)
    # Today is live (snapshots cover completed days): a day's worth of movements landed today
    # (new customers; ~5M / 730 days), inserted for this measurement and rolled back after it.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO analytics_mrrmovement (stripe_customer_id, stripe_subscription_id,"
                " kind, old_mrr, new_mrr, currency, occurred_at, source_event_id, created_at)"
                " SELECT 'cus_T' || g, 'sub_T' || g, 'new', 0, 1000 + g %% 50 * 100, %s,"
                " %s::timestamptz + (g %% 3600) * interval '1 second', 'evt_T' || g, now()"
                " FROM generate_series(1, %s) g",
                [currency, datetime.combine(today, datetime.min.time(), tzinfo=UTC), TODAY_ROWS],
            )
        summary_line(f"today_live_{TODAY_ROWS}_movements", today)
        transaction.set_rollback(True)

    def movements() -> Any:
        return reports.movements(start=range_start, end=range_end, currency=currency)

    def by_month() -> Any:
        return reports.movements_by_month(start=range_start, end=range_end, currency=currency)

    for label, fn in (("movements_12m", movements), ("movements_by_month_12m", by_month)):
        cold = median_ms(timed(fn, repeat, cache.clear))
        warm = median_ms(timed(fn, repeat))
        ratio = cold / base_range
        print(
            f"analytics_{label}  {range_start}..{range_end} {currency}  "
            f"bare_sum={base_range:.0f}ms  cold={cold:.1f}ms warm={warm:.1f}ms  "
            f"ratio={ratio:.2f}  (target <= 1.5x)  {verdict(ratio <= 1.5)}"
        )
        record(
            script="analytics.py",
            name=label.replace("_", " "),
            value=cold,
            unit="ms",
            baseline=base_range,
            target_ratio=1.5,
            higher_is_better=False,
        )
    result = movements()
    consistent = result.net_new == result.mrr_end - result.mrr_start
    print(
        f"analytics_movements_12m_values  mrr_start={result.mrr_start} mrr_end={result.mrr_end} "
        f"net_new={result.net_new}  {'OK (net new = end - start)' if consistent else 'MISMATCH'}"
    )


if __name__ == "__main__":
    main()
