"""Helpers shared by the benchmark scripts: ports, readiness, stopping a server, the benchmark
database, percentiles.

Scripts run as ``python bench/<name>.py`` from the repository root; they put the root on
``sys.path`` before importing this package.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import time
import urllib.parse
import urllib.request


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
