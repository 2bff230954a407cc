"""Webhook inbox: how fast are signed Stripe events acknowledged, and how fast is a backlog drained?

Against same-run baselines (the targets in brackets):
- acks: signed events POSTed to ``/stripe/webhook/<uuid>/`` through gunicorn (2 workers, the
  production command line, DEBUG off, plain HTTP on 127.0.0.1) against a bare Django view under
  the same server that parses the body and inserts one row (rate >= 0.6x bare, p99 < 100 ms);
  no Celery worker runs meanwhile, so every ack leaves a task waiting in Redis;
- drain: that backlog processed by one Celery worker (concurrency 1) against the same worker
  draining as many no-op tasks (rate >= 0.2x no-op);
- correctness: every event SUCCEEDED exactly once, one dj-stripe Event row per event.
- queries: the SQL statements (transaction control included) one event's processing issues.

Needs PostgreSQL and Redis: ``--database-url`` (default ``postgres://postgres@127.0.0.1:5432/
ras_bench``, created if missing, its inbox tables emptied) and ``--redis-url`` (default
``$REDIS_URL`` or db 15; its Celery queue is purged). Starts its own fake Stripe for dj-stripe's
account lookup. Run: ``.venv/bin/python bench/webhooks.py [--events 10000] [--concurrency 8]``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from bench.common import ensure_database, free_port, pct, wait_http  # noqa: E402
from bench.common.report import record  # noqa: E402

EVENT_TYPE = "balance.available"  # dj-stripe stores the Event; no mirror object to fetch


def sign(payload: bytes, secret: str) -> str:
    ts = int(time.time())
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def make_event(event_id: str) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2026-05-27.dahlia",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": EVENT_TYPE,
            "data": {"object": {"object": "balance", "livemode": False, "available": []}},
        }
    ).encode()


def post_all(
    port: int, path: str, bodies: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> tuple[float, list[float], int]:
    """POST every body from `concurrency` threads; (seconds, latencies, non-2xx count)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def worker(chunk: list[tuple[bytes, dict[str, str]]]) -> None:
        mine: list[float] = []
        bad = 0
        for body, headers in chunk:
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            mine.append(time.perf_counter() - started)
            bad += not 200 <= response.status < 300
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [
        threading.Thread(target=worker, args=(bodies[i::concurrency],)) for i in range(concurrency)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="backlog size (and acks)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/ras_bench")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    )
    parser.add_argument("--drain-timeout", type=float, default=1800)
    args = parser.parse_args()

    ensure_database(args.database_url)
    fake_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "bench.webhooks_support.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_hex(24),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "STRIPE_SECRET_KEY": "sk_test_" + "bench0fake0key0000000000000",
        "STRIPE_API_HOST": f"http://127.0.0.1:{fake_port}",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    procs: list[subprocess.Popen[bytes]] = []
    logs = open(os.devnull, "wb")  # noqa: SIM115

    def start(cmd: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logs, stderr=logs)
        procs.append(proc)
        return proc

    def stop(proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    try:
        start([str(BIN / "python"), "-m", "devstripe", "--port", str(fake_port)])
        wait_http(f"http://127.0.0.1:{fake_port}/_config/health")
        manage = [str(BIN / "python"), "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        setup = json.loads(
            subprocess.run(
                [*manage, "stripe_bootstrap", "--webhook-url", f"http://127.0.0.1:{web_port}"],
                cwd=ROOT, env=env, check=True, capture_output=True,
            ).stdout.decode().strip().splitlines()[-1]
        )  # fmt: skip
        hook_path = urllib.parse.urlparse(setup["webhook_url"]).path

        import django

        django.setup()
        from django.core.cache import cache
        from djstripe import models as djm

        from revenue_site.celery import app
        from subscriptions.models import WebhookEvent

        WebhookEvent.objects.all().delete()
        djm.Event.objects.filter(id__startswith="evt_bench_").delete()
        app.control.purge()
        cache.delete_many(["bench:noop:first", "bench:noop:last"])

        start([str(BIN / "gunicorn"), "revenue_site.wsgi", "--bind", f"127.0.0.1:{web_port}",
               "--workers", "2", "--timeout", "120"])  # fmt: skip
        wait_http(f"http://127.0.0.1:{web_port}/health")

        run = secrets.token_hex(4)
        n = args.events
        json_headers = {"Content-Type": "application/json"}
        bare = [(make_event(f"evt_bare_{run}_{i}"), json_headers) for i in range(n)]
        signed = []
        for i in range(n):
            body = make_event(f"evt_bench_{run}_{i}")
            signed.append((body, {**json_headers, "Stripe-Signature": sign(body, setup["secret"])}))
        warm = [(make_event(f"evt_warm_{run}_{i}"), json_headers) for i in range(100)]
        post_all(web_port, "/bench/bare/", warm, args.concurrency)

        bare_s, bare_lat, bare_err = post_all(web_port, "/bench/bare/", bare, args.concurrency)
        ours_s, ours_lat, ours_err = post_all(web_port, hook_path, signed, args.concurrency)
        WebhookEvent.objects.exclude(stripe_event_id__startswith="evt_bench_").delete()
        bare_rate, ours_rate = n / bare_s, n / ours_s
        print(
            f"webhook_ack  events={n} concurrency={args.concurrency}  "
            f"bare={bare_rate:.0f}/s  inbox={ours_rate:.0f}/s  ratio={ours_rate / bare_rate:.2f}"
            f"  (target >= 0.6)  errors bare={bare_err} inbox={ours_err}"
        )
        record(
            script="webhooks.py",
            name="signed webhooks acknowledged per second",
            value=ours_rate,
            unit="events/s",
            baseline=bare_rate,
            target_ratio=0.6,
        )
        print(
            f"webhook_ack_latency  bare p50={pct(bare_lat, 50):.1f}ms p99={pct(bare_lat, 99):.1f}ms"
            f"  inbox p50={pct(ours_lat, 50):.1f}ms p99={pct(ours_lat, 99):.1f}ms"
            "  (target inbox p99 < 100 ms)"
        )
        record(
            script="webhooks.py",
            name="webhook acknowledgement p99",
            value=pct(ours_lat, 99),
            unit="ms",
            target_value=100,
            higher_is_better=False,
        )

        worker_cmd = [str(BIN / "celery"), "-A", "revenue_site", "worker", "--concurrency", "1",
                      "--without-gossip", "--without-mingle", "--loglevel", "WARNING"]  # fmt: skip
        bench_rows = WebhookEvent.objects.filter(stripe_event_id__startswith=f"evt_bench_{run}_")
        worker = start(worker_cmd)
        deadline = time.monotonic() + args.drain_timeout
        while bench_rows.filter(status=WebhookEvent.Status.SUCCEEDED).count() < n:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        stop(worker)
        times = [
            t.timestamp()
            for t in bench_rows.exclude(processed_at=None).values_list("processed_at", flat=True)
        ]
        drain_rate = (len(times) - 1) / (max(times) - min(times)) if len(times) > 1 else 0.0

        for i in range(n):
            app.send_task("bench.noop", kwargs={"mark": i in (0, n - 1)})
        worker = start(worker_cmd)
        redis = app.connection_for_write().default_channel.client
        while redis.llen("celery") > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # the last task was taken off the queue; let it run
        stop(worker)
        first, last = cache.get("bench:noop:first"), cache.get("bench:noop:last")
        noop_rate = (n - 1) / (last - first) if first and last and last > first else 0.0
        print(
            f"webhook_drain  events={n}  noop={noop_rate:.0f}/s  inbox={drain_rate:.0f}/s  "
            f"ratio={drain_rate / noop_rate if noop_rate else 0:.2f}  (target >= 0.2)"
        )
        if noop_rate:
            record(
                script="webhooks.py",
                name="webhook backlog drained per second (one worker)",
                value=drain_rate,
                unit="events/s",
                baseline=noop_rate,
                target_ratio=0.2,
            )

        succeeded = bench_rows.filter(status=WebhookEvent.Status.SUCCEEDED, attempts=1).count()
        mirrored = djm.Event.objects.filter(id__startswith=f"evt_bench_{run}_").count()
        print(
            f"webhook_effects  sent={n}  inbox_rows={bench_rows.count()}  "
            f"succeeded_once={succeeded}  djstripe_events={mirrored}  "
            f"{'OK' if bench_rows.count() == succeeded == mirrored == n else 'MISMATCH'}"
        )

        # Queries of one event's processing, in this process (autocommit, like the worker).
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from subscriptions.services import inbox

        def statements(event_id: str) -> tuple[int, int]:
            row, _ = inbox.webhook_event_record(data=json.loads(make_event(event_id)))
            with CaptureQueriesContext(connection) as ctx:
                inbox.webhook_event_process(event_id=row.pk)
            ours = [q for q in ctx.captured_queries if WebhookEvent._meta.db_table in q["sql"]]
            return len(ctx.captured_queries), len(ours)

        # The first event of a process also resolves the owner account; the rest do not.
        first, _ = statements(f"evt_bench_{run}_q1")
        total, ours = statements(f"evt_bench_{run}_q2")
        print(
            f"webhook_queries  per_event={total} (inbox row={ours}, dj-stripe and transaction"
            f" control={total - ours}; the first event of a process: {first})"
        )
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                stop(proc)
        logs.close()


if __name__ == "__main__":
    main()
