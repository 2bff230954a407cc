"""Soak: ten minutes of mixed load on the whole system; any 5xx, memory creep, a queue left behind?

The system as deployed (``Procfile``): gunicorn (2 sync workers, DEBUG off), a Celery worker
(concurrency 2) and Celery beat, on PostgreSQL + Redis, with the fake Stripe (devstripe) for
what the worker fetches; the demo data of every stream (``seed_demo``) plus 2,000 licences.
Load from locust (``bench/soak_support/locustfile.py``, headless, its own process): signed
Stripe webhooks, affiliate link redirects, usage ingestion with an API key, licence
verification, the public catalogues, a customer's token API, the affiliate portal and its API
(logged in), the staff console's dashboard and changelists (logged in). A warm-up run first
(``--warmup`` seconds), then ``--seconds`` of load (``SOAK_SECONDS``, default 600).

Figures (the targets in brackets):
- 5xx responses over the warm-up and the run (0: any 5xx fails); other failed requests (an
  unexpected status, no response) are reported too (0);
- resident memory: VmRSS (/proc/<pid>/status) summed over gunicorn's master and workers, the
  Celery worker's processes and beat, after the warm-up (baseline) and at the end once the
  queue is drained ("flat": end <= 1.25x start; the growth over the run's second half is
  printed in MB/min as well);
- the Celery queue drained at the end: beat stopped, then within ``--drain-timeout`` seconds
  nothing left in the broker's queue or unacknowledged, and every webhook the run sent
  processed (0 left);
- per endpoint: requests, p50, p99 and max (exact, from every response's time), failures; a
  table in ``make bench``'s docs/benchmarks.md. Also checked and printed: every webhook sent
  SUCCEEDED once, every redirect's click stored once the buffer is flushed.

Needs PostgreSQL and Redis: ``--database-url`` (default ``postgres://postgres@127.0.0.1:5432/
ras_bench_soak``, dropped and re-created each run: the fake Stripe starts empty) and
``--redis-url`` (default ``redis://127.0.0.1:6379/11``; emptied at the start); under ``make
bench`` ``SOAK_DATABASE_URL`` and ``SOAK_REDIS_URL`` set them. Logs, locust's
CSV and the memory samples go to ``bench/results/soak-<time>/``.
Run: ``SOAK_SECONDS=600 .venv/bin/python bench/soak.py [--warmup 60] [--scale 1]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    bench_env,
    ensure_database,
    free_port,
    gunicorn_start,
    migrate,
    pct,
    process_stop,
    wait_http,
)
from bench.common.report import record, table  # noqa: E402

SCRIPT = "soak.py"
LOCUSTFILE = ROOT / "bench" / "soak_support" / "locustfile.py"
RSS_FLAT_RATIO = 1.25
# Users per kind of client at --scale 1, and each one's pace (tasks per second).
USERS = {"StripeSender": 2, "Visitor": 3, "ApiClient": 2, "Staff": 1, "Affiliate": 1}
PACE = {"StripeSender": 5.0, "Visitor": 10.0, "ApiClient": 5.0, "Staff": 1.0, "Affiliate": 2.0}
# Real events of the fake Stripe that the soak re-sends (under new ids): the worker re-fetches
# their objects from the fake and runs every receiver, whose effects are idempotent.
EVENT_TYPES = (
    "customer.created",
    "customer.updated",
    "customer.subscription.created",
    "customer.subscription.updated",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "charge.succeeded",
    "payment_intent.succeeded",
    "product.created",
    "price.created",
)
ADMIN_PATHS = [
    "/admin/djstripe/subscription/",
    "/admin/subscriptions/subscriptionstate/",
    "/admin/subscriptions/webhookevent/",
    "/admin/marketplace/usageevent/",
    "/admin/ledger/entry/",
    "/admin/affiliates/commission/",
    "/admin/affiliates/click/",
    "/admin/content/license/",
    "/admin/accounts/user/",
]
PORTAL_PATHS = ["/portal/", "/portal/links/", "/portal/commissions/", "/portal/payouts/"]
AFFILIATE_API_PATHS = ["/api/v1/affiliate/me", "/api/v1/affiliate/stats",
                       "/api/v1/affiliate/commissions", "/api/v1/affiliate/links"]  # fmt: skip
CUSTOMER_PATHS = ["/api/v1/accounts/me", "/api/v1/subscriptions/", "/api/v1/invoices/",
                  "/api/v1/entitlements/"]  # fmt: skip


# --- processes and their memory ---------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(stat.parent.name))
    return tree


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (gunicorn's workers, the Celery pool's children)."""
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(roots: dict[str, int]) -> dict[str, Any]:
    """RSS in MB per role (summed over the role's process tree), the total and the pids."""
    sample: dict[str, Any] = {"at": time.time(), "pids": {}}
    for role, pid in roots.items():
        pids = process_tree(pid)
        sample["pids"][role] = sorted(pids)
        sample[role] = sum(rss_kb(p) for p in pids) / 1024
    sample["total"] = sum(sample[role] for role in roots)
    return sample


def slope_mb_per_min(samples: list[dict[str, Any]]) -> float:
    """Least-squares growth of the total RSS over ``samples`` (MB per minute)."""
    if len(samples) < 2:
        return 0.0
    xs = [s["at"] / 60 for s in samples]
    ys = [s["total"] for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


# --- data -------------------------------------------------------------------------------------


def build_data(*, secret: str, hook_path: str, scale: int) -> dict[str, Any]:
    """What the load uses: logins, keys, codes and events (in this process, Django set up)."""
    import secrets

    import stripe
    from django.conf import settings

    from accounts.models import User
    from affiliates.demo import AFFILIATES
    from affiliates.models import Affiliate, ReferralLink
    from bench.license_verify import build_licences
    from content.models import ContentItem
    from marketplace import services as marketplace_services
    from revenue_site.demo import DEMO_ADMIN_EMAIL, DEMO_PASSWORD

    customer = User.objects.get(email="ada@demo.example")  # subscriptions, invoices, API usage
    customer_password = "soak-" + secrets.token_urlsafe(12)
    customer.set_password(customer_password)
    customer.save(update_fields=["password"])
    api_key = marketplace_services.api_key_create(user=customer, name="soak").key
    codes = list(
        ReferralLink.objects.filter(affiliate__status=Affiliate.Status.APPROVED).values_list(
            "code", flat=True
        )
    )
    items = list(
        ContentItem.objects.filter(status=ContentItem.Status.PUBLISHED).values_list("pk", flat=True)
    )
    events: list[dict[str, Any]] = []
    page: dict[str, Any] = {"has_more": True, "data": []}
    while page["has_more"] and len(events) < 400:  # the raw JSON, as Stripe sends it
        after = {"starting_after": page["data"][-1]["id"]} if page["data"] else {}
        listed = stripe.Event.list(limit=100, api_key=settings.STRIPE_SECRET_KEY, **after)
        assert listed.last_response is not None
        page = cast(dict[str, Any], listed.last_response.data)
        events += [e for e in page["data"] if e["type"] in EVENT_TYPES]
    if not events:
        raise SystemExit("the fake Stripe listed none of the soak's event types after seeding")
    return {
        "users": {kind: count * scale for kind, count in USERS.items()},
        "pace": PACE,
        "webhook_path": hook_path,
        "webhook_secret": secret,
        "events": sorted(events, key=lambda e: e["created"]),
        "click_codes": codes,
        "licence_keys": build_licences(2000),
        "content_items": items,
        "api_key": api_key,
        "usage_batch": 20,
        "customer": {"email": customer.email, "password": customer_password},
        "staff": {"email": DEMO_ADMIN_EMAIL, "password": DEMO_PASSWORD},
        "affiliate": {"email": AFFILIATES[0][0], "password": DEMO_PASSWORD},
        "admin_paths": ADMIN_PATHS,
        "portal_paths": PORTAL_PATHS,
        "affiliate_api_paths": AFFILIATE_API_PATHS,
        "customer_paths": CUSTOMER_PATHS,
    }


# --- load -------------------------------------------------------------------------------------


def locust(
    *,
    label: str,
    seconds: int,
    host: str,
    data_path: Path,
    out: Path,
    run: str,
    env: dict,
    log: IO[bytes],
) -> subprocess.Popen[bytes]:
    """``locust --headless`` for ``seconds`` with every user of the data file (its output to
    ``log``, its CSV files and the response times into ``out``)."""
    users = json.loads(data_path.read_text())["users"]
    total = sum(users.values())
    return subprocess.Popen(
        [str(BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "--host", host,
         "-u", str(total), "-r", str(total), "-t", f"{seconds}s", "--stop-timeout", "10",
         "--only-summary", "--csv", str(out / f"locust-{label}"), "--loglevel", "WARNING"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**env, "SOAK_DATA": str(data_path), "SOAK_OUT": str(out / f"times-{label}.json"),
             "SOAK_RUN": f"{run}{label[0]}"},
    )  # fmt: skip


def summarise(times: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    rows = []
    for name, by_status in sorted(times.items(), key=lambda kv: kv[0].split(" ", 1)[::-1]):
        every = [t for values in by_status.values() for t in values]
        counts = {int(status): len(values) for status, values in by_status.items()}
        rows.append(
            {
                "endpoint": name,
                "requests": len(every),
                "statuses": dict(sorted(counts.items())),
                "5xx": sum(n for s, n in counts.items() if s >= 500),
                "p50": pct([t / 1000 for t in every], 50) if len(every) > 1 else every[0],
                "p99": pct([t / 1000 for t in every], 99) if len(every) > 1 else every[0],
                "max": max(every),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", "600")),
        help="load after the warm-up (default $SOAK_SECONDS or 600)",
    )  # fmt: skip
    parser.add_argument(
        "--warmup", type=int, default=int(os.environ.get("SOAK_WARMUP_SECONDS", "60")),
        help="warm-up load before the memory baseline (default $SOAK_WARMUP_SECONDS or 60)",
    )  # fmt: skip
    parser.add_argument("--scale", type=int, default=1, help="users per kind x this")
    parser.add_argument("--sample-every", type=float, default=5.0, help="memory sample, seconds")
    parser.add_argument("--drain-timeout", type=float, default=300)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "SOAK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ras_bench_soak"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/11")
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress as it goes

    started = datetime.now(UTC)
    out = ROOT / "bench" / "results" / f"soak-{started:%Y%m%d-%H%M%S}"
    out.mkdir(parents=True)
    ensure_database(args.database_url, fresh=True)
    fake_port, web_port = free_port(), free_port()
    host = f"http://127.0.0.1:{web_port}"
    never = "1000000/min"  # the throttles count in Redis as deployed, without refusing the load
    env = bench_env(
        settings_module="revenue_site.settings",
        database_url=args.database_url,
        REDIS_URL=args.redis_url,
        STRIPE_SECRET_KEY="sk_test_" + "soak0fake0key00000000000000",
        STRIPE_API_HOST=f"http://127.0.0.1:{fake_port}",
        DJANGO_NUM_PROXIES="1",
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
        # No collectstatic (a minute or two of compressing files the load never fetches): the
        # pages name their static files unhashed.
        DJANGO_STATIC_MANIFEST="0",
        API_THROTTLE_ANON=never,
        API_THROTTLE_USER=never,
        API_THROTTLE_USAGE=never,
        API_THROTTLE_LICENSE_VERIFY=never,
        API_THROTTLE_AUTH_IP=never,
        API_THROTTLE_AUTH_EMAIL=never,
    )
    os.environ.update(env)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs: list[IO[bytes]] = []

    def start(role: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = open(out / f"{role}.log", "wb")  # noqa: SIM115 - closed in finally
        logs.append(log)
        procs[role] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        return procs[role]

    try:
        import redis as redis_lib

        redis_lib.Redis.from_url(args.redis_url).flushdb()
        start("devstripe", [str(BIN / "python"), "-m", "devstripe", "--port", str(fake_port)])
        wait_http(f"http://127.0.0.1:{fake_port}/_config/health")
        t0 = time.perf_counter()
        migrate(env)
        migrated_s = time.perf_counter() - t0
        manage = [str(BIN / "python"), "manage.py"]
        # Seeded as `make run` seeds: Celery eager (no REDIS_URL), before any webhook endpoint.
        subprocess.run([*manage, "seed_demo"], cwd=ROOT, env={**env, "REDIS_URL": ""},
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        setup = json.loads(
            subprocess.run(
                [*manage, "stripe_bootstrap", "--webhook-url", host],
                cwd=ROOT, env=env, check=True, capture_output=True,
            ).stdout.decode().strip().splitlines()[-1]
        )  # fmt: skip
        hook_path = urllib.parse.urlparse(setup["webhook_url"]).path

        import django

        django.setup()
        from affiliates.models import Click
        from affiliates.services import tracking
        from revenue_site.celery import app
        from subscriptions.models import WebhookEvent

        data = build_data(secret=setup["secret"], hook_path=hook_path, scale=args.scale)
        data_path = out / "data.json"
        data_path.write_text(json.dumps(data))
        event_types = sorted({e["type"] for e in data["events"]})
        print(
            f"soak_setup  migrate {migrated_s:.0f}s, seed + data "
            f"{time.perf_counter() - t0 - migrated_s:.0f}s  "
            f"events to re-send={len(data['events'])} ({', '.join(event_types)})  "
            f"licences={len(data['licence_keys'])}  users={data['users']}  logs: "
            f"{out.relative_to(ROOT)}"
        )

        load_from = datetime.now(UTC)  # clicks after this are the soak's
        gunicorn_log = open(out / "gunicorn.log", "wb")  # noqa: SIM115 - closed in finally
        logs.append(gunicorn_log)
        procs["gunicorn"] = gunicorn_start(env, web_port, gunicorn_log)
        start("worker", [str(BIN / "celery"), "-A", "revenue_site", "worker", "--concurrency",
                         "2", "--loglevel", "WARNING"])  # fmt: skip
        start("beat", [str(BIN / "celery"), "-A", "revenue_site", "beat", "--loglevel", "WARNING",
                       "--schedule", str(out / "celerybeat-schedule")])  # fmt: skip
        deadline = time.monotonic() + 120
        while not app.control.ping(timeout=1.0):  # the pool forked and consuming
            if time.monotonic() > deadline or procs["worker"].poll() is not None:
                raise SystemExit(f"the Celery worker did not start; see {out}/worker.log")
        roots = {role: procs[role].pid for role in ("gunicorn", "worker", "beat")}
        run = started.strftime("%H%M%S")
        common = {"host": host, "data_path": data_path, "out": out, "run": run, "env": env}
        for label in ("warmup", "run"):
            logs.append(open(out / f"locust-{label}.log", "wb"))  # noqa: SIM115 - closed in finally

        warm = procs["locust-warmup"] = locust(
            label="warmup", seconds=args.warmup, log=logs[-2], **common
        )
        warm.wait(timeout=args.warmup + 120)
        baseline = memory(roots)
        print(
            f"soak_warmup  {args.warmup}s  RSS after it: {baseline['total']:.0f} MB "
            f"(gunicorn {baseline['gunicorn']:.0f}, worker {baseline['worker']:.0f}, "
            f"beat {baseline['beat']:.0f})"
        )
        samples = [baseline]
        load = procs["locust-run"] = locust(
            label="run", seconds=args.seconds, log=logs[-1], **common
        )
        load_deadline = time.monotonic() + args.seconds + 120
        while load.poll() is None:
            if time.monotonic() > load_deadline:
                process_stop(load)  # locust's own -t did not end it: stop it, report what it sent
                break
            time.sleep(args.sample_every)
            samples.append(memory(roots))
        load_end = samples[-1]

        # Drain: no new periodic tasks, then the broker's queue and the inbox emptied.
        process_stop(procs["beat"])
        broker = app.connection_for_write().default_channel.client
        sent = WebhookEvent.objects.filter(stripe_event_id__startswith="evt_soak_")
        waiting = sent.filter(
            status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.PROCESSING]
        )
        t_drain = time.monotonic()
        while True:
            left = broker.llen("celery") + broker.hlen("unacked") + waiting.count()
            if left == 0 or time.monotonic() - t_drain > args.drain_timeout:
                break
            time.sleep(0.5)
        drain_s = time.monotonic() - t_drain
        roots.pop("beat")
        end = memory(roots)
        end_total = end["total"] + load_end["beat"]  # beat as it was when the load ended
        for role in ("gunicorn", "worker"):
            workers = [p for p in end["pids"][role] if p != roots[role]]
            before = [p for p in baseline["pids"][role] if p != roots[role]]
            if workers != before:
                print(f"soak_note  {role}'s child processes changed: {before} -> {workers}")

        # Effects: every webhook processed once, every redirect's click stored.
        statuses = dict(
            sorted((s, sent.filter(status=s).count()) for s in WebhookEvent.Status.values)
        )
        while broker.llen(tracking.CLICK_BUFFER_KEY) or broker.llen(tracking.CLICK_PROCESSING_KEY):
            tracking.click_buffer_flush()
        times: dict[str, dict[str, dict[str, list[float]]]] = {}  # label, endpoint, status
        for label in ("warmup", "run"):
            path = out / f"times-{label}.json"
            times[label] = json.loads(path.read_text()) if path.exists() else {}
        rows = {label: summarise(times[label]) for label in times}
        redirects = sum(
            len(t.get("302", [])) for label in times for n, t in times[label].items()
            if n == "GET /r/<code>"
        )  # fmt: skip
        clicks = Click.objects.filter(clicked_at__gte=load_from).count()
        hooks_2xx = sum(
            len(t.get("200", [])) for label in times for n, t in times[label].items()
            if n.startswith("POST /stripe/webhook/")
        )  # fmt: skip
        print(
            f"soak_effects  webhooks sent={hooks_2xx} (distinct ids {sent.count()}) inbox "
            f"statuses={statuses}  redirects={redirects} clicks stored={clicks} "
            f"{'OK' if clicks == redirects else 'MISMATCH'}"
        )

        run_rows = rows["run"]
        total = sum(r["requests"] for r in run_rows)
        if not total:
            raise SystemExit(f"locust sent no request; see {out}/locust-run.log")
        lines = {
            role: (out / f"{role}.log").read_text(errors="replace").splitlines()
            for role in ("gunicorn", "worker", "beat")
        }
        errors = {
            role: sum(
                '"level": "ERROR"' in line or "ERROR/" in line or "Traceback" in line
                for line in role_lines
            )
            for role, role_lines in lines.items()
        }
        # Django logs every 5xx it answers, the fake Stripe's own deliveries included.
        logged_5xx = sum(
            '"logger": "django.request"' in line and '"status_code": 5' in line
            for line in lines["gunicorn"]
        )
        print(
            f"soak_logs  lines at ERROR or with a traceback: {errors}; 5xx logged by the site: "
            f"{logged_5xx}  (logs in {out})"
        )
        print(
            f"soak_load  {args.seconds}s  requests={total} ({total / args.seconds:.0f}/s)  "
            f"warm-up requests={sum(r['requests'] for r in rows['warmup'])}"
        )
        print(
            f"{'endpoint':<48} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses"
        )
        for r in run_rows:
            print(
                f"{r['endpoint']:<48} {r['requests']:>8} {r['p50']:>8.1f} {r['p99']:>8.1f} "
                f"{r['max']:>8.0f}  {r['statuses']}"
            )

        client_5xx = sum(r["5xx"] for label in rows for r in rows[label])
        fives = max(client_5xx, logged_5xx)  # the fake's deliveries are not locust's
        failed = 0
        for label in ("warmup", "run"):
            path = out / f"locust-{label}_stats.csv"
            if path.exists():
                with path.open(encoding="utf-8") as file:
                    for row in csv.DictReader(file):
                        if row["Name"] != "Aggregated":
                            failed += int(row["Failure Count"])
        record(script=SCRIPT, name="5xx responses (warm-up and run)", value=fives, unit="responses",
               target_value=0, higher_is_better=False)  # fmt: skip
        record(script=SCRIPT, name="requests failed otherwise (unexpected status, no answer)",
               value=failed - client_5xx, unit="requests", target_value=0,
               higher_is_better=False)  # fmt: skip
        half = [s for s in samples if s["at"] >= samples[0]["at"] + args.seconds / 2]
        growth = slope_mb_per_min(half)
        peak = max(s["total"] for s in samples)
        print(
            f"soak_memory  RSS start={baseline['total']:.0f} MB  end={end_total:.0f} MB  "
            f"peak={peak:.0f} MB  ratio={end_total / baseline['total']:.2f} (target <= "
            f"{RSS_FLAT_RATIO})  second-half growth={growth:+.2f} MB/min  gunicorn "
            f"{baseline['gunicorn']:.0f}->{end['gunicorn']:.0f}  worker {baseline['worker']:.0f}"
            f"->{end['worker']:.0f}  beat {baseline['beat']:.0f}->{load_end['beat']:.0f} MB"
        )
        (out / "memory.json").write_text(json.dumps([*samples, end]))
        record(script=SCRIPT, name="resident memory at the end (RSS: gunicorn + Celery)",
               value=end_total, unit="MB", baseline=baseline["total"],
               target_ratio=RSS_FLAT_RATIO, higher_is_better=False)  # fmt: skip
        left = broker.llen("celery") + broker.hlen("unacked") + waiting.count()
        print(
            f"soak_drain  beat stopped, queue and inbox drained in {drain_s:.1f}s  "
            f"left={left} (queue {broker.llen('celery')}, unacked {broker.hlen('unacked')}, "
            f"webhooks unprocessed {waiting.count()})"
        )
        record(script=SCRIPT, name="Celery tasks and webhooks left after the drain", value=left,
               unit="tasks", target_value=0, higher_is_better=False)  # fmt: skip
        table(
            script=SCRIPT,
            title=f"per endpoint over {args.seconds} s of mixed load ({total} requests)",
            columns=["endpoint", "requests", "p50 ms", "p99 ms", "max ms", "statuses"],
            rows=[
                [
                    f"`{r['endpoint']}`",
                    r["requests"],
                    f"{r['p50']:.1f}",
                    f"{r['p99']:.1f}",
                    f"{r['max']:.0f}",
                    ", ".join(f"{s}: {n}" for s, n in r["statuses"].items()),
                ]
                for r in run_rows
            ],
        )
        return 0
    finally:
        for role in reversed(list(procs)):  # locust, beat, the worker, gunicorn, the fake
            process_stop(procs[role])
        for log in logs:
            log.close()


if __name__ == "__main__":
    sys.exit(main())
