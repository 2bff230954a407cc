"""Usage ingestion: events/s through ``POST /api/v1/usage/events`` against COPY, the summary of a
customer-month of 10 million events, and is any event lost or doubled?

Against same-run baselines (the targets in brackets), through gunicorn (2 workers, DEBUG off,
plain HTTP on 127.0.0.1, PostgreSQL with the events table partitioned by month):
- ingest: batches of 1,000 events POSTed by several concurrent clients, each with its own
  customer and real API key (validation, key dedupe, events into their month's partition,
  hourly rollups, all in one transaction per batch); a tenth of the batches are sent twice (a
  retry), as duplicates. Baseline: ``COPY`` of the same rows (events only: no dedupe, no
  rollups) into the same partitioned table, for another customer (>= 20,000 events/s through
  the API; the ratio to COPY is reported);
- summary: one customer with ``--stored`` events (default 10 million) in one month, loaded
  server-side (``INSERT … SELECT generate_series`` into the key table and the partitioned events
  table, the rollups built by ``INSERT … SELECT … GROUP BY`` over those events), then
  ``GET /api/v1/usage/summary`` for that month (group_by=day) and the selector it calls
  (median < 50 ms);
- recount: per API customer, rows stored = distinct ids sent, and rollup count and sum = a
  recount of the raw events (the same for the 10-million customer): zero lost or doubled.

Needs PostgreSQL: ``--database-url`` (default ``postgres://postgres@127.0.0.1:5432/
ras_bench_usage``; dropped and re-created each run). No Redis (throttle counters in each worker's
memory, raised out of the way). Run: ``.venv/bin/python bench/usage_ingest.py [--batches 200]
[--clients 4] [--stored 10000000]``.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from bench.common import ensure_database, free_port, pct, process_stop, wait_http  # noqa: E402
from bench.common.report import record  # noqa: E402

BATCH = 1000


def post(port: int, key: str, body: bytes) -> tuple[float, int, dict]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request(
        "POST",
        "/api/v1/usage/events",
        body=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return time.perf_counter() - started, response.status, json.loads(data or b"{}")


def make_batches(client: int, n_batches: int, now: datetime, rng: random.Random) -> list[list]:
    """Unique ids per client; quantities with up to 6 decimals; timestamps as a metering client
    reports them: 90% within the last two hours, 10% late, anywhere in the last 30 days (so
    this month's and last month's partitions, and many hourly rollup rows per batch)."""
    batches = []
    for b in range(n_batches):
        events = []
        for i in range(BATCH):
            micros = rng.randrange(1, 50_000_000)
            late = rng.random() < 0.1
            at = now - timedelta(seconds=rng.randrange(60, 30 * 86400 if late else 7200))
            events.append(
                {
                    "id": f"c{client}-b{b}-e{i}",
                    "metric": "api_calls",
                    # a float whose shortest repr is the exact 6-decimal value (JSON number)
                    "quantity": float(Decimal(micros).scaleb(-6)),
                    "timestamp": at.isoformat().replace("+00:00", "Z"),
                    "properties": {"endpoint": f"/v1/things/{i % 17}", "region": "eu"},
                }
            )
        batches.append(events)
    return batches


def encode(events: list[dict]) -> bytes:
    return json.dumps({"events": events}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=200, help="batches of 1,000 in total")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (customers)")
    parser.add_argument("--stored", type=int, default=10_000_000, help="events in the month")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/ras_bench_usage"
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # figures as they come

    ensure_database(args.database_url, fresh=True)
    web_port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "revenue_site.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_hex(24),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
        "DATABASE_URL": args.database_url,
        "API_THROTTLE_USAGE": "100000000/min",
    }
    env.pop("REDIS_URL", None)
    os.environ.clear()
    os.environ.update(env)
    logs = open(os.devnull, "wb")  # noqa: SIM115
    server: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [str(BIN / "python"), "manage.py", "migrate", "--noinput"],
            cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        import django

        django.setup()
        from django.db import connection

        from accounts.models import User
        from marketplace import selectors, services, usage_store
        from marketplace.models import Meter, UsageEvent, UsageEventKey, UsageRollup, month_bounds

        meter = Meter.objects.get(code="api_calls")
        events_table = UsageEvent._meta.db_table
        keys_table = UsageEventKey._meta.db_table
        rollups_table = UsageRollup._meta.db_table
        customers, keys = [], []
        for c in range(args.clients):
            user = User.objects.create(email=f"bench-usage-{c}@example.com")
            customers.append(user)
            keys.append(services.api_key_create(user=user, name="bench").key)
        now = datetime.now(tz=UTC)
        rng = random.Random(20261203)
        per_client = max(1, args.batches // args.clients)
        batches = [make_batches(c, per_client, now, rng) for c in range(args.clients)]
        bodies = [[encode(b) for b in client_batches] for client_batches in batches]
        # A tenth of each client's batches are sent again later (retries: all duplicates).
        plans = [
            list(range(per_client)) + list(range(0, per_client, 10)) for _ in range(args.clients)
        ]
        sent_events = sum(len(plan) for plan in plans) * BATCH
        distinct_ids = per_client * args.clients * BATCH

        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "revenue_site.wsgi", "--bind", f"127.0.0.1:{web_port}",
             "--workers", "2", "--timeout", "120"],
            cwd=ROOT, env=env, stdout=logs, stderr=logs,
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{web_port}/health")

        # warm up: one small batch per worker-ish, for a throwaway customer
        warm = User.objects.create(email="bench-usage-warm@example.com")
        warm_key = services.api_key_create(user=warm, name="warm").key
        for w in range(4):
            body = encode(make_batches(99, 1, now, random.Random(w))[0][:100])
            body = body.replace(b'"c99-', f'"w{w}-'.encode())
            post(web_port, warm_key, body)

        latencies: list[float] = []
        statuses: dict[int, int] = {}
        totals = {"accepted": 0, "duplicates": 0}
        lock = threading.Lock()

        def client(c: int) -> None:
            mine: list[float] = []
            for index in plans[c]:
                seconds, status, body = post(web_port, keys[c], bodies[c][index])
                mine.append(seconds)
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 202:
                        totals["accepted"] += body["accepted"]
                        totals["duplicates"] += body["duplicates"]

            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        api_s = time.perf_counter() - t0
        api_rate = sent_events / api_s
        stored_rate = totals["accepted"] / api_s

        # Baseline: COPY the same rows (first time each) into the same table, another customer.
        baseline = User.objects.create(email="bench-usage-copy@example.com")
        received = now.isoformat()
        buffer = io.StringIO()
        next_id = 10**12
        for client_batches in batches:
            for events in client_batches:
                for e in events:
                    props = json.dumps(e["properties"]).replace("\\", "\\\\")
                    buffer.write(
                        f"{next_id}\t{baseline.pk}\t{e['id']}\t{meter.pk}\t{e['quantity']}\t"
                        f"{e['timestamp']}\t{props}\t{received}\n"
                    )
                    next_id += 1
        copy_rows = next_id - 10**12
        buffer.seek(0)
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(
                f"COPY {events_table} (id, customer_id, event_id, meter_id, quantity,"
                ' "timestamp", properties, received_at) FROM STDIN',
                buffer,
            )
        copy_s = time.perf_counter() - t0
        copy_rate = copy_rows / copy_s
        print(
            f"usage_ingest_rate  batches={sum(len(p) for p in plans)}x{BATCH} "
            f"clients={args.clients}  api={api_rate:.0f} events/s (stored {stored_rate:.0f}/s)  "
            f"copy={copy_rate:.0f} rows/s  ratio={api_rate / copy_rate:.2f}  "
            f"(target api >= 20000/s)  statuses={statuses}"
        )
        record(
            script="usage_ingest.py",
            name="usage events ingested per second (API)",
            value=api_rate,
            unit="events/s",
            baseline=copy_rate,
            target_value=20000,
        )
        print(
            f"usage_ingest_latency  per batch of {BATCH}: p50={pct(latencies, 50):.0f}ms "
            f"p95={pct(latencies, 95):.0f}ms"
        )

        # Recount of the API customers.
        ok = totals == {"accepted": distinct_ids, "duplicates": sent_events - distinct_ids}
        for user in customers:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT count(*), count(DISTINCT event_id), COALESCE(sum(quantity), 0) "  # noqa: S608
                    f"FROM {events_table} WHERE customer_id = %s",
                    [user.pk],
                )
                rows, distinct, total = cursor.fetchone()
            rolled = usage_store.rollup_totals(customer_id=user.pk)[meter.pk]
            expected = per_client * BATCH
            ok &= rows == distinct == expected == rolled["count"] and rolled["sum"] == total
        print(
            f"usage_ingest_recount  sent={sent_events} distinct_ids={distinct_ids} "
            f"accepted={totals['accepted']} duplicates={totals['duplicates']}  "
            f"{'OK (rows = distinct ids, rollups = recount)' if ok else 'MISMATCH'}"
        )

        # 10 million events in last month for one customer, loaded server-side.
        big = User.objects.create(email="bench-usage-big@example.com")
        big_key = services.api_key_create(user=big, name="big").key
        start, end = month_bounds(now - timedelta(days=32))
        span = int((end - start).total_seconds())
        n = args.stored
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
            cursor.execute(
                f'INSERT INTO {keys_table} (customer_id, event_id, "timestamp")'  # noqa: S608
                f" SELECT %s, 'big-' || g,"
                f" %s::timestamptz + ((g::bigint * 7919) %% %s) * interval '1 second'"
                f" FROM generate_series(1, %s) g",
                [big.pk, start, span, n],
            )
            cursor.execute(
                f"INSERT INTO {events_table} (id, customer_id, event_id, meter_id, quantity,"  # noqa: S608
                ' "timestamp", properties, received_at)'
                f" SELECT k.id, k.customer_id, k.event_id, %s, ((k.id %% 5000) + 1) / 1000.0,"
                f" k.\"timestamp\", '{{}}'::jsonb, now() FROM {keys_table} k"
                f" WHERE k.customer_id = %s",
                [meter.pk, big.pk],
            )
            load_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            micros = "(quantity * 1000000)::bigint"
            cursor.execute(
                f"INSERT INTO {rollups_table} (customer_id, meter_id, hour, count, sum_micros,"  # noqa: S608
                " max_micros, latest_micros, latest_at)"
                f" SELECT customer_id, meter_id, date_trunc('hour', \"timestamp\"), count(*),"
                f" sum({micros}), max({micros}),"
                f' (array_agg({micros} ORDER BY "timestamp" DESC))[1], max("timestamp")'
                f' FROM {events_table} WHERE customer_id = %s AND "timestamp" >= %s'
                f' AND "timestamp" < %s GROUP BY 1, 2, 3',
                [big.pk, start, end],
            )
            rollup_s = time.perf_counter() - t1
            cursor.execute("ANALYZE")
        print(
            f"usage_month_load  events={n} in {start:%Y-%m}  insert_select={load_s:.1f}s "
            f"({n / load_s:.0f} rows/s into keys + partition)  rollups_group_by={rollup_s:.1f}s"
        )

        def timed(fn, repeat=30) -> list[float]:
            fn()
            out = []
            for _ in range(repeat):
                t = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t)
            return out

        query = urllib.parse.urlencode(
            {"metric": "api_calls", "start": start.isoformat(), "end": end.isoformat()}
        )

        def api_summary() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", web_port, timeout=30)
            conn.request(
                "GET",
                f"/api/v1/usage/summary?{query}",
                headers={"Authorization": f"Bearer {big_key}"},
            )
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status

        api_times = timed(api_summary)
        selector_times = timed(
            lambda: selectors.usage_summary(
                customer=big, meter=meter, start=start, end=end, group_by="day"
            )
        )
        summary = selectors.usage_summary(
            customer=big, meter=meter, start=start, end=end, group_by="day"
        )
        print(
            f"usage_summary_month  events={n}  "
            f"api median={statistics.median(api_times) * 1000:.1f}ms "
            f"p95={pct(api_times, 95):.1f}ms  selector median="
            f"{statistics.median(selector_times) * 1000:.1f}ms  (target < 50 ms)  "
            f"buckets={len(summary.buckets)}"
        )
        record(
            script="usage_ingest.py",
            name="usage summary of a 10M-event customer-month",
            value=statistics.median(selector_times) * 1000,
            unit="ms",
            target_value=50,
            higher_is_better=False,
        )
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*), sum(quantity) FROM {events_table} WHERE customer_id = %s"  # noqa: S608
                ' AND "timestamp" >= %s AND "timestamp" < %s',
                [big.pk, start, end],
            )
            raw_count, raw_sum = cursor.fetchone()
        recount_s = time.perf_counter() - t0
        rolled = usage_store.rollup_totals(customer_id=big.pk)[meter.pk]
        ok = raw_count == rolled["count"] == n and raw_sum == rolled["sum"] == summary.value
        print(
            f"usage_month_recount  raw count={raw_count} sum={raw_sum}  rollups count="
            f"{rolled['count']} sum={rolled['sum']}  summary={summary.value}  "
            f"raw recount took {recount_s * 1000:.0f}ms  {'OK' if ok else 'MISMATCH'}"
        )
    finally:
        process_stop(server)
        logs.close()


if __name__ == "__main__":
    main()
