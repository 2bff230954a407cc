"""Licence verification: `GET /api/v1/content/licenses/verify?key=…` against a constant JSON view.

Against same-run baselines (the targets in brackets), through gunicorn (2 workers, DEBUG off,
plain HTTP on 127.0.0.1, PostgreSQL, REDIS_URL set so the per-IP throttle counts in Redis):
- rate: verifications of random stored keys (100,000 licences with a download limit, so each
  answer is the licence lookup plus its usage count; one key in ten unknown) against a view
  under the same server answering a constant JSON body (ratio >= 0.7);
- latency: p95 of verifications paced at half their measured peak rate (< 15 ms);
- no 5xx (and no 429: the clients spread over 2,000 addresses in ``X-Forwarded-For``, with
  ``DJANGO_NUM_PROXIES=1``, like many buyers' machines behind one proxy).

Needs PostgreSQL and Redis: ``--database-url`` (default ``postgres://postgres@127.0.0.1:5432/
ras_bench_license_verify``, created if missing; the bench's licences are replaced on each run)
and ``--redis-url`` (default ``redis://127.0.0.1:6379/12``).
Run: ``.venv/bin/python bench/license_verify.py [--requests 5000] [--licences 100000]``.
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import bench_site, http_bench_parser, pct  # noqa: E402
from bench.common.report import record  # noqa: E402

BENCH_EMAIL = "bench-license-verify@example.com"


def get_one(port: int, path: str, ip: str) -> tuple[float, int]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"User-Agent": "bench/license", "X-Forwarded-For": ip})
    response = conn.getresponse()
    response.read()
    conn.close()
    return time.perf_counter() - started, response.status


def run(
    port: int, paths: list[str], n: int, concurrency: int, rate: float | None = None
) -> tuple[float, list[float], dict[int, int]]:
    """GET n of `paths` (cycling) from `concurrency` threads, as fast as possible or paced at
    `rate`/s. Returns (seconds, latencies, count per status). Paced latency counts from the
    scheduled time if the client fell behind."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    next_index = [0]
    start = time.perf_counter() + 0.05

    def worker() -> None:
        mine: list[float] = []
        seen: dict[int, int] = {}
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= n:
                break
            path = paths[i % len(paths)]
            ip = f"10.{(i % 2000) // 250}.{i % 250}.7"
            if rate:
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                seconds, code = get_one(port, path, ip)
                seconds = max(seconds, time.perf_counter() - due)
            else:
                seconds, code = get_one(port, path, ip)
            mine.append(seconds)
            seen[code] = seen.get(code, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, count in seen.items():
                statuses[code] = statuses.get(code, 0) + count

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, statuses


def build_licences(count: int) -> list[str]:
    """Replace the bench's licences with `count` fresh ones; returns their keys."""
    from auditlog.context import disable_auditlog
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import User
    from content.models import ContentItem, Creator, License, LicenseType, LicenseUsage
    from content.services import license_key_generate

    user, _ = User.objects.get_or_create(email=BENCH_EMAIL)
    creator, _ = Creator.objects.get_or_create(user=user, defaults={"display_name": "Bench"})
    item, _ = ContentItem.objects.get_or_create(
        owner=creator,
        title="Bench item",
        defaults={"kind": "software", "status": "published", "published_at": timezone.now()},
    )
    license_type, _ = LicenseType.objects.get_or_create(
        item=item,
        kind="commercial",
        defaults={"amount": 1999, "currency": "usd", "limits": {"downloads": 100}},
    )
    # The last run's made-up licences are not history: without this, deleting them wrote
    # 100,000 audit log entries (a minute of the setup, and a table growing each run).
    with transaction.atomic(), disable_auditlog():
        LicenseUsage.objects.filter(license__content=item).delete()
        License.objects.filter(content=item).delete()
    keys: list[str] = []
    now = timezone.now()
    batch: list[License] = []
    prefixes: set[str] = set()
    while len(keys) < count:
        new = license_key_generate()
        # The visible prefix is 32 random bits and unique: at 100,000 keys a repeat is likely
        # (birthday bound), so draw again as the issuing service would have to.
        if new.prefix in prefixes:
            continue
        prefixes.add(new.prefix)
        keys.append(new.key)
        batch.append(
            License(
                license_type=license_type,
                content=item,
                holder=user,
                key_prefix=new.prefix,
                key_hash=new.key_hash,
                status=License.Status.ACTIVE,
                issued_at=now,
                amount=1999,
                currency="usd",
            )
        )
        if len(batch) == 5000:
            License.objects.bulk_create(batch)
            batch = []
    License.objects.bulk_create(batch)
    return keys


def main() -> None:
    parser = http_bench_parser(__doc__ or "", database="bench_license_verify", redis_db=12)
    parser.add_argument("--licences", type=int, default=100_000, help="licences stored")
    args = parser.parse_args()

    with bench_site(
        settings_module="bench.license_verify_support.settings",
        database_url=args.database_url,
        DJANGO_NUM_PROXIES="1",
        REDIS_URL=args.redis_url,
    ) as site:
        from django.core.cache import cache
        from django.db import connection

        from content.services import license_key_generate

        t0 = time.perf_counter()
        keys = build_licences(args.licences)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE content_license")
        print(
            f"license_verify_setup  licences={len(keys)}  built_in={time.perf_counter() - t0:.1f}s"
        )
        cache.clear()  # throttle histories of earlier runs

        rng = random.Random(11)  # the same keys each run
        sample = [
            rng.choice(keys) if i % 10 else license_key_generate().key for i in range(args.requests)
        ]
        ours = [
            "/api/v1/content/licenses/verify?" + urllib.parse.urlencode({"key": k}) for k in sample
        ]
        plain = ["/bench/plain-json"]

        site.start()
        # The variants answer what they should: a stored key is valid, a fresh one unknown.
        answers = [
            json.loads(urllib.request.urlopen(site.url(path)).read()) for path in (ours[1], ours[0])
        ]
        assert [a["status"] for a in answers] == ["valid", "unknown"], answers

        n, c = args.requests, args.concurrency
        for paths in (plain, ours):  # warm up both
            run(site.port, paths, 200, c)
        # Alternate the variants (three rounds each) and keep each one's best round: the
        # machine's noise hits both alike.
        plain_runs, ours_runs = [], []
        for _ in range(3):
            plain_runs.append(run(site.port, plain, n, c))
            ours_runs.append(run(site.port, ours, n, c))
        plain_s, plain_lat, _ = min(plain_runs, key=lambda r: r[0])
        ours_s, ours_lat, _ = min(ours_runs, key=lambda r: r[0])

        def merged(runs: list[tuple[float, list[float], dict[int, int]]]) -> dict[int, int]:
            total: dict[int, int] = {}
            for _, _, statuses in runs:
                for code, count in statuses.items():
                    total[code] = total.get(code, 0) + count
            return dict(sorted(total.items()))

        plain_rate, ours_rate = n / plain_s, n / ours_s
        print(
            f"license_verify_rate  requests={n}x3 concurrency={c}  plain_json={plain_rate:.0f}/s"
            f"  verify={ours_rate:.0f}/s  ratio={ours_rate / plain_rate:.2f}  (target >= 0.7)  "
            f"statuses plain={merged(plain_runs)} verify={merged(ours_runs)}"
        )
        record(
            script="license_verify.py",
            name="licence verifications per second",
            value=ours_rate,
            unit="req/s",
            baseline=plain_rate,
            target_ratio=0.7,
        )
        print(
            f"license_verify_latency_peak  plain p50={pct(plain_lat, 50):.1f}ms "
            f"p95={pct(plain_lat, 95):.1f}ms  verify p50={pct(ours_lat, 50):.1f}ms "
            f"p95={pct(ours_lat, 95):.1f}ms"
        )
        half = ours_rate / 2
        paced_n = min(n, int(half * 10)) or 1  # about ten seconds
        _, paced_lat, paced_statuses = run(site.port, ours, paced_n, c, rate=half)
        print(
            f"license_verify_latency_half_peak  rate={half:.0f}/s requests={paced_n}  "
            f"p50={pct(paced_lat, 50):.1f}ms p95={pct(paced_lat, 95):.1f}ms  "
            f"(target p95 < 15 ms)  statuses={dict(sorted(paced_statuses.items()))}"
        )
        record(
            script="license_verify.py",
            name="licence verification p95 at half the peak",
            value=pct(paced_lat, 95),
            unit="ms",
            target_value=15,
            higher_is_better=False,
        )


if __name__ == "__main__":
    main()
