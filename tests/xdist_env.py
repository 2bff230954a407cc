"""Loaded with ``-p tests.xdist_env`` (pyproject addopts), before Django reads its settings.

Under pytest-xdist each worker process runs its own session: its own test database
(pytest-django suffixes the name), its own fake Stripe (a session fixture on a free port) and,
set here, its own Redis database, so the cache, throttles, click buffers and the Celery broker
of one worker never see another's. Without xdist, or without REDIS_URL, nothing changes.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

REDIS_DATABASES = 16  # Redis' default number of databases
# Workers' databases are this far apart from the configured one (gw0 keeps it).
_STRIDE = 8


def worker_redis_url(url: str, worker: str) -> str:
    """``redis://host:6379/1`` for worker ``gw1`` → ``redis://host:6379/9``."""
    index = int(worker.removeprefix("gw") or 0)
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base + index * _STRIDE) % REDIS_DATABASES}"))


_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = worker_redis_url(os.environ["REDIS_URL"], _worker)
