"""The analytics benchmark's data, generated server-side in SQL (``INSERT … SELECT
generate_series``), once: each part is written in one transaction together with its row in
``bench_analytics_marker``, so a later run finds the marker and skips the part (a part that
failed half-way left nothing behind).

Parts:
- ``subscriptions``: ``--subscriptions`` dj-stripe subscriptions (two per customer, so half as
  many dj-stripe customers), each with 4 to 6 MRR changes spread over the 24 months before the
  anchor (the first of the month 24 months before generation): the first starts it, an even
  change may cancel it (MRR 0), an odd one always (re)starts it at another level, so every
  change is a change. Currency per customer (usd, eur, gbp in turn). From those steps:
  ``analytics_mrrmovement`` rows (``old_mrr``/``new_mrr`` per subscription; the kind decided at
  the customer level per currency, as ``analytics.services.mrr_movement_record`` does: a window
  sum of the customer's earlier deltas), ``subscriptions_subscriptionstate`` (the last step),
  ``djstripe_subscription`` and ``djstripe_customer`` rows with Stripe-shaped ``stripe_data``.
  5 movements per subscription on average: 1M subscriptions give ~5M movements.
- ``usage``: ``--usage-events`` marketplace usage events of the ``api_calls`` meter for 1,000
  customers (accounts users) over the 60 days before generation (into the month partitions
  ``usage_partitions_ensure`` creates), their dedupe keys, and the hourly rollups built from
  them by ``GROUP BY`` (as ``bench/usage_ingest.py`` does).

Pseudo-random choices are integer hashes of the row numbers: two generations with the same
sizes and anchor write the same rows.
"""

# ruff: noqa: S608  (SQL assembled from this module's constants only; values are parameters)

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

MARKER = "bench_analytics_marker"
CURRENCIES = ("usd", "eur", "gbp")
USAGE_CUSTOMERS = 1000
USAGE_DAYS = 60


def marker_ensure(cursor: Any) -> None:
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {MARKER} (part text PRIMARY KEY, rows bigint NOT NULL,"
        " seconds double precision NOT NULL, detail jsonb NOT NULL DEFAULT '{}',"
        " done_at timestamptz NOT NULL DEFAULT now())"
    )


def marker_get(cursor: Any, part: str) -> tuple[int, float, dict[str, Any]] | None:
    cursor.execute(
        f"SELECT rows, seconds, detail FROM {MARKER} WHERE part = %s",
        [part],
    )
    row = cursor.fetchone()
    if not row:
        return None
    detail = json.loads(row[2]) if isinstance(row[2], str) else dict(row[2])
    return int(row[0]), float(row[1]), detail


def _marker_set(cursor: Any, part: str, rows: int, seconds: float, detail: str) -> None:
    cursor.execute(
        f"INSERT INTO {MARKER} (part, rows, seconds, detail) VALUES (%s, %s, %s, %s::jsonb)"
        " ON CONFLICT (part) DO UPDATE SET rows = EXCLUDED.rows, seconds = EXCLUDED.seconds,"
        " detail = EXCLUDED.detail, done_at = now()",
        [part, rows, seconds, detail],
    )


def _anchor(now: datetime) -> datetime:
    """The first of the month 24 months before `now` (UTC)."""
    month = now.year * 12 + now.month - 1 - 24
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)


# Per (subscription s, step i): h(s, i) a pseudo-random integer in [0, 1000003).
_H = "((({s})::bigint * 2654435761 + ({i})::bigint * 40503 + 12345) %% 1000003)"


def subscriptions_generate(
    cursor: Any, *, subscriptions: int, now: datetime, log: Callable[[str], None]
) -> tuple[int, float, str]:
    """Steps -> movements, subscription states, dj-stripe customers and subscriptions. Returns
    (movement rows, seconds, detail JSON)."""
    anchor = _anchor(now)
    span = 730 * 86400  # seconds: the 24 months after the anchor, give or take a day
    started = time.perf_counter()
    cursor.execute("SET LOCAL work_mem = '256MB'")
    cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
    cursor.execute("SET LOCAL synchronous_commit = off")
    h_s = _H.format(s="s", i="0")
    h_si = _H.format(s="s", i="i")
    # s: 1..N; customer c = (s + 1) / 2 (two subscriptions each); n steps in 4..6;
    # the subscription starts st seconds after the anchor (within ~600 days), its steps
    # spaced evenly over the rest of the 24 months with up to a day of jitter.
    cursor.execute(
        "CREATE TEMP TABLE bench_steps ON COMMIT DROP AS"
        " SELECT s, (s + 1) / 2 AS c, i, n,"
        "   CASE WHEN i %% 2 = 0 AND (" + h_si + " %% 100) < 35 THEN 0"
        f"        ELSE (5 + {h_s} %% 45) * 100 * (1 + (i * (1 + {h_s} %% 4)) %% 5) END AS v,"
        "   %s::timestamptz + make_interval(secs => st + (i - 1) * ((%s - st) / n)"
        f"        + ({h_si} %% 86400)) AS at"
        " FROM (SELECT s, 4 + (" + h_s + " %% 3) AS n,"
        f"        (({h_s} * 7919) %% (600 * 86400))::bigint AS st"
        "       FROM generate_series(1, %s) s) subs,"
        " LATERAL generate_series(1, n) i",
        [anchor, span, subscriptions],
    )
    steps = cursor.rowcount
    log(f"  steps: {steps} rows ({time.perf_counter() - started:.0f}s)")
    cursor.execute("CREATE INDEX ON bench_steps (s, i)")
    cursor.execute("ANALYZE bench_steps")

    customers = (subscriptions + 1) // 2
    t = time.perf_counter()
    currency_case = (
        "(ARRAY['" + "','".join(CURRENCIES) + f"'])[(c %% {len(CURRENCIES)}) + 1]"
    )  # c is an integer
    # Movements: old = the subscription's previous step (0 before the first), kind at the
    # customer level from the running sum of the customer's earlier deltas.
    cursor.execute(
        "INSERT INTO analytics_mrrmovement (stripe_customer_id, stripe_subscription_id, kind,"
        " old_mrr, new_mrr, currency, occurred_at, source_event_id, created_at)"
        " SELECT 'cus_B' || lpad(c::text, 8, '0'), 'sub_B' || lpad(s::text, 8, '0'),"
        "   CASE WHEN before <= 0 AND before + delta > 0"
        "          THEN CASE WHEN seq = 1 THEN 'new' ELSE 'reactivation' END"
        "        WHEN before + delta <= 0 THEN 'churn'"
        "        WHEN delta > 0 THEN 'expansion' ELSE 'contraction' END,"
        f"   old, v, {currency_case}, at, 'evt_B' || s || '_' || i, now()"
        " FROM (SELECT *, v - old AS delta,"
        "         COALESCE(SUM(v - old) OVER (PARTITION BY c ORDER BY at, s, i"
        "           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before,"
        "         ROW_NUMBER() OVER (PARTITION BY c ORDER BY at, s, i) AS seq"
        "       FROM (SELECT *, COALESCE(LAG(v) OVER (PARTITION BY s ORDER BY i), 0) AS old"
        "             FROM bench_steps) x) y"
        " ORDER BY at",
        [],
    )
    movements = cursor.rowcount
    log(f"  analytics_mrrmovement: {movements} rows ({time.perf_counter() - t:.0f}s)")

    t = time.perf_counter()
    cursor.execute(
        "INSERT INTO djstripe_customer (djstripe_created, djstripe_updated, stripe_data, id,"
        " livemode, created, metadata, email)"
        " SELECT now(), now(), jsonb_build_object('id', cid, 'object', 'customer',"
        "   'email', email, 'created', extract(epoch FROM created)::bigint, 'livemode', false,"
        f"   'currency', {currency_case}, 'metadata', '{{}}'::jsonb, 'delinquent', false,"
        "   'invoice_settings', jsonb_build_object('default_payment_method', null)),"
        "   cid, false, created, '{}'::jsonb, email"
        " FROM (SELECT c, 'cus_B' || lpad(c::text, 8, '0') AS cid,"
        "         'bench-customer-' || c || '@example.com' AS email, min(at) AS created"
        "       FROM bench_steps WHERE i = 1 GROUP BY c) x",
        [],
    )
    log(f"  djstripe_customer: {cursor.rowcount} rows ({time.perf_counter() - t:.0f}s)")

    t = time.perf_counter()
    cursor.execute(
        "CREATE TEMP TABLE bench_last ON COMMIT DROP AS"
        " SELECT DISTINCT ON (s) s, c, v, at,"
        "   first_value(at) OVER (PARTITION BY s ORDER BY i) AS first_at"
        " FROM bench_steps ORDER BY s, i DESC",
        [],
    )
    last = "SELECT * FROM bench_last"
    cursor.execute(
        "INSERT INTO djstripe_subscription (djstripe_created, djstripe_updated, stripe_data,"
        " id, livemode, created, metadata, customer_id)"
        " SELECT now(), now(), jsonb_build_object("
        "   'id', sid, 'object', 'subscription', 'customer', cid,"
        "   'status', CASE WHEN v > 0 THEN 'active' ELSE 'canceled' END,"
        f"   'currency', {currency_case}, 'livemode', false, 'metadata', '{{}}'::jsonb,"
        "   'created', extract(epoch FROM first_at)::bigint,"
        "   'start_date', extract(epoch FROM first_at)::bigint,"
        "   'canceled_at', CASE WHEN v > 0 THEN NULL ELSE extract(epoch FROM at)::bigint END,"
        "   'ended_at', CASE WHEN v > 0 THEN NULL ELSE extract(epoch FROM at)::bigint END,"
        "   'cancel_at_period_end', false, 'collection_method', 'charge_automatically',"
        "   'discounts', '[]'::jsonb, 'trial_end', NULL,"
        "   'items', jsonb_build_object('object', 'list', 'has_more', false, 'data',"
        "     jsonb_build_array(jsonb_build_object('id', 'si_B' || lpad(s::text, 8, '0'),"
        "       'object', 'subscription_item', 'quantity', 1, 'price', jsonb_build_object("
        "         'id', 'price_B' || (CASE WHEN v > 0 THEN v ELSE 100 END),"
        "         'object', 'price', 'type', 'recurring', 'billing_scheme', 'per_unit',"
        f"         'currency', {currency_case},"
        "         'unit_amount', CASE WHEN v > 0 THEN v ELSE 100 END,"
        "         'recurring', jsonb_build_object('interval', 'month', 'interval_count', 1,"
        "           'usage_type', 'licensed')))))),"
        "   sid, false, first_at, '{}'::jsonb, cid"
        " FROM (SELECT *, 'sub_B' || lpad(s::text, 8, '0') AS sid,"
        f"         'cus_B' || lpad(c::text, 8, '0') AS cid FROM ({last}) l) x ORDER BY s",
        [],
    )
    log(f"  djstripe_subscription: {cursor.rowcount} rows ({time.perf_counter() - t:.0f}s)")

    t = time.perf_counter()
    cursor.execute(
        "INSERT INTO subscriptions_subscriptionstate (stripe_subscription_id,"
        " stripe_customer_id, status, currency, mrr, as_of, updated_at)"
        " SELECT 'sub_B' || lpad(s::text, 8, '0'), 'cus_B' || lpad(c::text, 8, '0'),"
        f"   CASE WHEN v > 0 THEN 'active' ELSE 'canceled' END, {currency_case}, v, at, now()"
        f" FROM ({last}) l ORDER BY s",
        [],
    )
    log(
        f"  subscriptions_subscriptionstate: {cursor.rowcount} rows "
        f"({time.perf_counter() - t:.0f}s)"
    )
    for table in (
        "analytics_mrrmovement",
        "djstripe_customer",
        "djstripe_subscription",
        "subscriptions_subscriptionstate",
    ):
        cursor.execute(f"ANALYZE {table}")
    seconds = time.perf_counter() - started
    detail = (
        f'{{"anchor": "{anchor.date().isoformat()}", "subscriptions": {subscriptions},'
        f' "customers": {customers}, "movements": {movements}}}'
    )
    return movements, seconds, detail


def usage_generate(
    cursor: Any, *, events: int, now: datetime, meter_id: int, log: Callable[[str], None]
) -> tuple[int, float, str]:
    """Users, keys, events (into the month partitions) and hourly rollups. Returns (events,
    seconds, detail JSON)."""
    started = time.perf_counter()
    cursor.execute("SET LOCAL work_mem = '256MB'")
    cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
    cursor.execute("SET LOCAL synchronous_commit = off")
    cursor.execute(
        "INSERT INTO accounts_user (password, is_superuser, email, name, is_staff, is_active,"
        " date_joined)"
        " SELECT '!', false, 'bench-usage-' || g || '@example.com', 'Usage ' || g, false,"
        " true, now() FROM generate_series(1, %s) g"
        " ON CONFLICT DO NOTHING",
        [USAGE_CUSTOMERS],
    )
    cursor.execute(
        "CREATE TEMP TABLE bench_usage_users ON COMMIT DROP AS"
        " SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM accounts_user"
        " WHERE email LIKE 'bench-usage-%%@example.com'",
        [],
    )
    users = cursor.rowcount
    span = USAGE_DAYS * 86400
    t = time.perf_counter()
    # Event g: customer g % users, timestamp spread over the last USAGE_DAYS days.
    cursor.execute(
        'INSERT INTO marketplace_usageeventkey (customer_id, event_id, "timestamp")'
        " SELECT u.id, 'ev-' || g, %s::timestamptz - make_interval(secs =>"
        "   1 + ((g::bigint * 7919) %% %s))"
        " FROM generate_series(1, %s) g JOIN bench_usage_users u ON u.k = g %% %s",
        [now, span, events, users],
    )
    log(f"  marketplace_usageeventkey: {cursor.rowcount} rows ({time.perf_counter() - t:.0f}s)")
    t = time.perf_counter()
    cursor.execute(
        "INSERT INTO marketplace_usageevent (id, customer_id, event_id, meter_id, quantity,"
        ' "timestamp", properties, received_at)'
        " SELECT k.id, k.customer_id, k.event_id, %s, ((k.id %% 5000) + 1) / 1000.0,"
        " k.\"timestamp\", jsonb_build_object('endpoint', '/v1/things/' || (k.id %% 17),"
        " 'region', 'eu'), k.\"timestamp\" + interval '2 seconds'"
        " FROM marketplace_usageeventkey k JOIN bench_usage_users u ON u.id = k.customer_id",
        [meter_id],
    )
    inserted = cursor.rowcount
    log(f"  marketplace_usageevent: {inserted} rows ({time.perf_counter() - t:.0f}s)")
    t = time.perf_counter()
    micros = "(quantity * 1000000)::bigint"
    cursor.execute(
        "INSERT INTO marketplace_usagerollup (customer_id, meter_id, hour, count, sum_micros,"
        " max_micros, latest_micros, latest_at)"
        " SELECT customer_id, meter_id, date_trunc('hour', \"timestamp\"), count(*),"
        f" sum({micros}), max({micros}),"
        f' (array_agg({micros} ORDER BY "timestamp" DESC))[1], max("timestamp")'
        " FROM marketplace_usageevent e JOIN bench_usage_users u ON u.id = e.customer_id"
        " GROUP BY 1, 2, 3",
        [],
    )
    log(f"  marketplace_usagerollup: {cursor.rowcount} rows ({time.perf_counter() - t:.0f}s)")
    for table in (
        "accounts_user",
        "marketplace_usageeventkey",
        "marketplace_usageevent",
        "marketplace_usagerollup",
    ):
        cursor.execute(f"ANALYZE {table}")
    seconds = time.perf_counter() - started
    return inserted, seconds, f'{{"customers": {users}, "days": {USAGE_DAYS}}}'


def _skip_fk_triggers(cursor: Any) -> None:
    """The rows are consistent by construction (every foreign key points at a row written
    before it, in the same transaction): as a superuser, skip the deferred foreign-key checks
    (one trigger per row, run at COMMIT: minutes for 20M rows), as ``pg_restore`` does."""
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", [])
    row = cursor.fetchone()
    if row and row[0]:
        cursor.execute("SET LOCAL session_replication_role = replica", [])


def ensure(
    connection: Any,
    *,
    subscriptions: int,
    usage_events: int,
    meter_id: int,
    log: Callable[[str], None],
) -> dict[str, tuple[int, float, dict[str, Any], bool]]:
    """Generate the parts not generated yet. Returns per part (rows, seconds it took, detail,
    generated in this run)."""
    from django.db import transaction

    now = datetime.now(tz=UTC).replace(microsecond=0)
    out: dict[str, tuple[int, float, dict[str, Any], bool]] = {}
    with connection.cursor() as cursor:
        marker_ensure(cursor)
    parts: list[tuple[str, int, Callable[..., tuple[int, float, str]], dict[str, Any]]] = [
        ("subscriptions", subscriptions, subscriptions_generate, {"subscriptions": subscriptions}),
        ("usage", usage_events, usage_generate, {"events": usage_events, "meter_id": meter_id}),
    ]
    for part, size, generate, kwargs in parts:
        with connection.cursor() as cursor:
            found = marker_get(cursor, part)
        if found is not None:
            rows, seconds, detail = found
            if detail.get("size") == size:
                out[part] = (rows, seconds, detail, False)
                log(f"{part}: found ({rows} rows, generated earlier in {seconds:.0f}s)")
                continue
            raise SystemExit(
                f"{part} was generated with size {detail.get('size')}, not {size}: drop the "
                "database (--fresh) to generate it again"
            )
        log(f"{part}: generating ({size}) ...")
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            _skip_fk_triggers(cursor)
            rows, seconds, detail_json = generate(cursor, now=now, log=log, **kwargs)
            detail_json = detail_json[:-1] + f', "size": {size}}}'
            _marker_set(cursor, part, rows, seconds, detail_json)
        seconds = time.perf_counter() - started  # with the COMMIT
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {MARKER} SET seconds = %s WHERE part = %s",
                [seconds, part],
            )
        with connection.cursor() as cursor:
            found = marker_get(cursor, part)
        assert found is not None
        out[part] = (*found, True)
        log(f"{part}: {rows} rows in {seconds:.0f}s")
    return out
