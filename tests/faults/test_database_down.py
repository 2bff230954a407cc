"""PostgreSQL drops a request's connection mid-request (issue 14, faults): the request answers a
clean 503 with Retry-After (the API error shape on API paths, an HTML page in the staff
console), never 500, and nothing it wrote is left.

How: the test holds a lock on a table the request writes to (or reads), so the request blocks
inside its transaction; the test then ends the request's server process with
``pg_terminate_backend``, as a failover, a restart or an administrator does, and lets go of
the lock. The requests go to the live server (a real WSGI server in a thread) over HTTP, from
another thread.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from rest_framework.authtoken.models import Token

from marketplace.models import Order, OrderEvent
from tests.accounts.factories import SuperuserFactory, UserFactory
from tests.marketplace.factories_orders import OrderPackageFactory

pytestmark = [
    pytest.mark.fault,
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="pg_terminate_backend and table locks need PostgreSQL",
    ),
    pytest.mark.django_db(transaction=True),
]

BLOCK_TIMEOUT = 15.0  # seconds to wait for the request to block on the lock


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def _send(request: urllib.request.Request) -> Answer:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), error.read())


def _terminate_while_blocked(table: str, send: Callable[[], Answer]) -> tuple[Answer, int]:
    """Run ``send`` in a thread while this test holds an exclusive lock on ``table``; once the
    request's backend waits on the lock, terminate it, let go, and return the answer and the
    pid that was terminated."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            future = pool.submit(send)
            deadline = time.monotonic() + BLOCK_TIMEOUT
            pid = None
            while pid is None:
                # A transaction sees one snapshot of the statistics views unless cleared.
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' "
                    "AND query ILIKE %s",
                    [f"%{table}%"],
                )
                row = cursor.fetchone()
                if row:
                    pid = row[0]
                elif future.done() or time.monotonic() > deadline:
                    pytest.fail(f"the request never blocked on {table}: {future.result()}")
                else:
                    time.sleep(0.05)
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone()[0] is True
        return future.result(timeout=30), pid


def _assert_503(answer: Answer) -> None:
    assert answer.status == 503, (answer.status, answer.body[:2000])
    assert int(answer.headers["Retry-After"]) > 0


def test_an_api_write_whose_connection_is_dropped_answers_503_and_writes_nothing(live_server):
    package = OrderPackageFactory(price=4200)
    buyer = UserFactory(password=None)
    token = Token.objects.create(user=buyer)
    request = urllib.request.Request(
        live_server.url + "/api/v1/marketplace/orders/",
        data=json.dumps({"package": package.pk, "requirements": "A fox"}).encode(),
        headers={"Authorization": f"Token {token.key}", "Content-Type": "application/json"},
        method="POST",
    )
    # The order row is inserted, then its first event blocks: the transaction is half done.
    answer, _ = _terminate_while_blocked(OrderEvent._meta.db_table, lambda: _send(request))

    _assert_503(answer)
    body = json.loads(answer.body)
    assert body["error"]["code"] == "database_unavailable"
    assert body["error"]["retry_after"] == int(answer.headers["Retry-After"])
    assert answer.headers["Content-Type"].startswith("application/json")
    assert not Order.objects.exists()  # the order inserted before the drop was rolled back
    assert not OrderEvent.objects.exists()

    # The server recovers: the next request gets a fresh connection and succeeds.
    retry = _send(request)
    assert retry.status == 201, retry.body[:2000]
    assert Order.objects.count() == 1 and OrderEvent.objects.count() == 1


def test_a_staff_console_page_whose_connection_is_dropped_answers_503(live_server, client):
    staff = SuperuserFactory()
    client.force_login(staff)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    page = live_server.url + "/admin/marketplace/order/"
    request = urllib.request.Request(page, headers={"Cookie": cookie})

    answer, _ = _terminate_while_blocked(Order._meta.db_table, lambda: _send(request))

    _assert_503(answer)
    assert answer.headers["Content-Type"].startswith("text/html")
    assert b"temporarily unavailable" in answer.body
    assert _send(request).status == 200


def test_a_connection_dropped_in_middleware_answers_503_too(live_server, client):
    """Loading the signed-in user happens in middleware (the audit log's actor), before any
    view: the 500 handler answers it as unavailable as well."""
    staff = SuperuserFactory()
    client.force_login(staff)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    request = urllib.request.Request(live_server.url + "/admin/", headers={"Cookie": cookie})

    answer, _ = _terminate_while_blocked(get_user_model()._meta.db_table, lambda: _send(request))

    _assert_503(answer)
    assert b"temporarily unavailable" in answer.body
    assert _send(request).status == 200
