"""A real Celery worker that tests can kill -9, and the levers that stop it where they want.

- :class:`Worker`: ``celery -A revenue_site worker --pool=prefork -c 1`` as a subprocess in a
  session of its own, on the test database (committed data: the tests are transactional), the
  suite's Redis and the fake Stripe. ``kill_all`` is ``kill -9`` of the whole worker (main
  process and pool child: the task's message stays unacknowledged in Redis until the visibility
  timeout, set to 1 s here through ``CELERY_VISIBILITY_TIMEOUT``, has passed and a worker
  restores it); ``kill_child`` kills the pool child only (the main process rejects the message
  back to the queue: ``acks_late`` + ``reject_on_worker_lost``, then forks a new child).
- :class:`RowLocks`: a second PostgreSQL connection that holds row locks, so a task stops at
  the statement that needs them (``waiters`` says when it is waiting: pg_stat_activity).
- :func:`fake_has_unread_request`: with the fake Stripe stopped (SIGSTOP), whether a request
  has reached its socket unread (``/proc/net/tcp``): the worker is then inside the Stripe call.

Nothing of the application is patched: the worker runs the production code on the production
settings, with only the environment changed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import pytest
import redis
from django.conf import settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent.parent
READY_TIMEOUT = 45.0
WAIT_TIMEOUT = 45.0


# The running worker's log, added to a timeout's failure message.
_current: list[Worker] = []


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT_TIMEOUT) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``
    with the worker's log."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(worker.log() for worker in _current)
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{logs}")
        time.sleep(0.05)


def worker_database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test database)."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or "5432"
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def broker_purge() -> None:
    """Forget every queued and unacknowledged task of the suite's Redis database (left by a
    killed worker of an earlier test, or by tests that queue without a worker)."""
    from revenue_site.celery import app

    app.control.purge()
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.delete("unacked", "unacked_index", "unacked_mutex")
    finally:
        client.close()


class Worker:
    """One Celery worker subprocess at a time; ``start`` again after a kill is the restart."""

    def __init__(self, *, stripe_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": worker_database_url(),
            "DJANGO_CONN_MAX_AGE": "0",
            "REDIS_URL": settings.REDIS_URL,
            "STRIPE_API_HOST": stripe_url,
            "STRIPE_SECRET_KEY": settings.STRIPE_SECRET_KEY,
            "CELERY_VISIBILITY_TIMEOUT": "1",
            "DJANGO_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[str] = []
        _current.append(self)

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept for the failure message)
            prefix="fault-worker-", suffix=".log", delete=False
        )
        self.logs.append(log.name)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "revenue_site",
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--hostname=fault-{os.getpid()}-{len(self.logs)}@%h",
            ],
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches main and child
        )
        log.close()
        wait_until(
            lambda: self._ready() or self._exited(),
            f"the worker to be ready (log {self.logs[-1]})",
            READY_TIMEOUT,
        )
        if self.process.poll() is not None:
            pytest.fail(f"the worker exited with {self.process.returncode}: {self.log()}")

    def _ready(self) -> bool:
        return " ready." in Path(self.logs[-1]).read_text(errors="replace")

    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def log(self) -> str:
        return "\n".join(Path(name).read_text(errors="replace")[-6000:] for name in self.logs)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def children(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except FileNotFoundError:
            return []
        return [int(pid) for pid in text.split()]

    def kill_child(self) -> int:
        """kill -9 the pool child running the task; returns once the main process has forked
        its replacement (the message is back in the queue by then)."""
        (child,) = self.children()
        os.kill(child, signal.SIGKILL)
        wait_until(
            lambda: self.children() and child not in self.children(),
            "the worker to replace its killed pool child",
        )
        return child

    def kill_all(self) -> None:
        """kill -9 the whole worker (its process group: main process and pool child)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill_all()
        if self in _current:
            _current.remove(self)
        for name in self.logs:
            Path(name).unlink(missing_ok=True)


class RowLocks:
    """Row locks held by the test in its own PostgreSQL transaction."""

    def __init__(self) -> None:
        db = connection.settings_dict
        self.conn = psycopg2.connect(
            dbname=db["NAME"],
            user=db["USER"] or None,
            password=db["PASSWORD"] or None,
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
            application_name="fault-test-locks",
        )
        with self.conn.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.backend = cursor.fetchone()[0]
        self.conn.commit()

    def hold(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a ``SELECT … FOR UPDATE`` and keep its locks until ``release``; rows locked."""
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return len(cursor.fetchall())

    def release(self) -> None:
        self.conn.rollback()

    def waiters(self) -> list[int]:
        """Backends of this database blocked by the locks held here."""
        with self.conn.cursor() as cursor:
            # Statistics views are read once per transaction unless the snapshot is dropped.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND %s = ANY(pg_blocking_pids(pid))",
                [self.backend],
            )
            return [row[0] for row in cursor.fetchall()]

    def end_waiters(self) -> list[int]:
        """Terminate the backends of a killed worker that wait for these locks, and return
        once they are gone (their transactions rolled back).

        A backend blocked on a lock does not notice its client died until it has the lock and
        answers; if the client had sent COMMIT (a deferred foreign key check waiting), the
        transaction would then commit without anyone. That ending is correct too, but not the
        case a test stops the task for: a killed worker whose transaction never commits, as
        PostgreSQL does when it notices the dead connection (``client_connection_check_interval``,
        TCP keepalives) or the lock is held long enough.
        """
        pids = self.waiters()
        with self.conn.cursor() as cursor:
            for pid in pids:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

        def gone() -> bool:
            with self.conn.cursor() as cursor:
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
                return cursor.fetchone()[0] == 0

        wait_until(gone, f"backends {pids} to end")
        return pids

    def close(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


def fake_has_unread_request(port: int) -> bool:
    """Whether a connection to the (stopped) fake Stripe on ``port`` holds bytes it has not
    read: a request is in flight."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            rx_queue = int(fields[4].split(":")[1], 16)
            if local_port == port and fields[3] == "01" and rx_queue > 0:
                return True
    return False
