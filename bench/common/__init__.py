"""Helpers shared by the benchmark scripts: ports, readiness, the benchmark database and
environment, migrating it, the site under gunicorn and stopping it, percentiles.

Scripts run as ``python bench/<name>.py`` from the repository root; they put the root on
``sys.path`` before importing this package.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
# As the Dockerfile and Procfile run the site (a test checks those two agree).
GUNICORN_WORKERS = 2
GUNICORN_TIMEOUT_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    """Poll `url` until it answers (any status read) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def ensure_database(url: str, *, fresh: bool = False) -> None:
    """Create the PostgreSQL database named in `url` if it does not exist (`fresh`: drop it
    first, so a run starts empty)."""
    parsed = urllib.parse.urlparse(url)
    name = parsed.path.lstrip("/")
    import psycopg2

    conn = psycopg2.connect(parsed._replace(path="/postgres").geturl())
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            if fresh:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if not cursor.fetchone():
                cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def pct(values: list[float], q: int) -> float:
    """The q-th percentile of `values` (seconds), in milliseconds."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def process_stop(process: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    """Stop a server the script started (terminate, then kill if it does not exit)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def http_bench_parser(description: str, *, database: str, redis_db: int) -> argparse.ArgumentParser:
    """The options of a benchmark of the site over HTTP: ``--requests`` per variant,
    ``--concurrency`` (client threads), ``--database-url`` (default ``ras_<database>`` on the
    local PostgreSQL) and ``--redis-url`` (default DB ``redis_db`` on the local Redis)."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per variant")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument(
        "--database-url", default=f"postgres://postgres@127.0.0.1:5432/ras_{database}"
    )
    parser.add_argument("--redis-url", default=f"redis://127.0.0.1:6379/{redis_db}")
    return parser


def bench_env(*, settings_module: str, database_url: str, **extra: str) -> dict[str, str]:
    """The environment a benchmark runs the site in: ``settings_module``, DEBUG off, a fresh
    secret key, plain HTTP on 127.0.0.1, warnings only, ``database_url``, and ``extra``."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_hex(24),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        **extra,
    }


def migrate(env: dict[str, str]) -> None:
    """``manage.py migrate`` the benchmark database."""
    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "--noinput"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def gunicorn_start(env: dict[str, str], port: int, logs: IO[bytes]) -> subprocess.Popen[bytes]:
    """The site under gunicorn on 127.0.0.1:``port`` (as deployed: 2 sync workers), once its
    ``/health`` answers. Stop it with :func:`process_stop`."""
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "revenue_site.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(GUNICORN_WORKERS), "--timeout", str(GUNICORN_TIMEOUT_SECONDS)],
        cwd=ROOT, env=env, stdout=logs, stderr=logs,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
    except BaseException:
        process_stop(server)
        raise
    return server


@dataclass
class BenchSite:
    """The site a benchmark runs: its environment, its port, and gunicorn once started."""

    env: dict[str, str]
    port: int
    logs: IO[bytes]
    server: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> None:
        self.server = gunicorn_start(self.env, self.port, self.logs)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def bench_site(*, settings_module: str, database_url: str, **extra: str) -> Iterator[BenchSite]:
    """Prepare the site for a benchmark: the database (created if missing) migrated, the
    environment (:func:`bench_env`) set in this process too and Django set up, a free port.
    The body starts gunicorn (``site.start()``) when its data is ready; it is stopped on exit.
    """
    ensure_database(database_url)
    env = bench_env(settings_module=settings_module, database_url=database_url, **extra)
    os.environ.update(env)
    with open(os.devnull, "wb") as logs:
        site = BenchSite(env=env, port=free_port(), logs=logs)
        try:
            migrate(env)
            import django

            django.setup()
            yield site
        finally:
            process_stop(site.server)
