"""Redis stops (issue 14, faults): /health says degraded; the API, the staff console and the
portal keep serving (sessions fall back to the database); click tracking writes clicks at once;
usage ingestion accepts and stores; nothing answers 500 and nothing accepted is lost.

The test runs its own redis-server on a free port and points the cache at it, so stopping it
leaves the suite's Redis alone.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import Client
from django_redis import get_redis_connection

from affiliates.models import Click
from marketplace.models import UsageEvent
from revenue_site.settings import redis_cache
from tests.accounts.factories import SuperuserFactory, UserFactory
from tests.affiliates.factories import ReferralLinkFactory
from tests.marketplace.helpers import bearer, event, key_for, post_events

PASSWORD = "correct-horse-battery-9"

pytestmark = [
    pytest.mark.fault,
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_redis(settings) -> Iterator[subprocess.Popen[bytes]]:
    """A private redis-server as the cache (sessions, throttles, click buffer), stopped by the
    test when it wants Redis gone."""
    port = _free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    settings.REDIS_URL = url
    settings.CACHES = {"default": redis_cache(url)}  # the production cache, on our server
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"  # as in production
    yield server
    server.kill()
    server.wait(timeout=10)


def test_with_redis_stopped_everything_serves_degraded_and_nothing_is_lost(own_redis):
    staff = Client()
    admin = SuperuserFactory(password=PASSWORD)
    staff.force_login(admin)
    customer = UserFactory()
    api = bearer(key_for(customer))
    link = ReferralLinkFactory()
    cache.set("probe", 1)
    assert cache.get("probe") == 1
    port = get_redis_connection("default").connection_pool.connection_kwargs["port"]
    assert f":{port}/" in own_redis.args[2] or str(port) == own_redis.args[2]  # the private one

    own_redis.kill()
    own_redis.wait(timeout=10)

    health = Client().get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["checks"]["cache"] == "error"

    assert Client().get("/api/v1/plans/").status_code == 200
    assert staff.get("/admin/").status_code == 200  # the session comes from the database
    assert staff.get("/admin/affiliates/program/").status_code == 200

    clicks = Click.objects.count()
    redirect = Client().get(f"/r/{link.code}")
    assert redirect.status_code == 302
    assert Click.objects.count() == clicks + 1  # written at once, not buffered and lost

    # Ingestion goes on (its rate limit lets requests through while it cannot count them).
    response = post_events(api, [event("during-outage", 3)])
    assert response.status_code == 202, response.content
    assert UsageEvent.objects.filter(event_id="during-outage").count() == 1
    assert post_events(api, [event("during-outage", 3)]).json()["duplicates"] == 1

    # Staff can still sign in (failed attempts are not counted meanwhile, never a 500).
    wrong = Client().post("/admin/login/", {"username": admin.email, "password": "nope"})
    assert wrong.status_code == 200
    right = Client().post("/admin/login/", {"username": admin.email, "password": PASSWORD})
    assert right.status_code == 302
