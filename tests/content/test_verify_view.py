"""The licence verification URL is served by a plain Django view (content.api_licensing.
license_verify_view) and documented by its DRF twin (LicenseVerifyView): both must give the same
answers, and the served one must survive a database connection that broke since its last use."""

from __future__ import annotations

import json

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import resolve
from rest_framework.test import APIRequestFactory

from content.api_licensing import LicenseVerifyView
from content.models import License
from content.services import license_key_generate
from tests.content.factories import LicenseFactory, LicenseTypeFactory
from tests.content.test_licensing import VERIFY, _rates

pytestmark = pytest.mark.django_db


def _licence(**kwargs):
    new_key = license_key_generate()
    return LicenseFactory(new_key=new_key, **kwargs), new_key.key


def _answers(method, params, ip):
    """(status, JSON body, Retry-After) from the served URL and from the documented DRF view."""
    served = getattr(Client(REMOTE_ADDR=ip), method)(VERIFY, params)
    twin_request = getattr(APIRequestFactory(REMOTE_ADDR=ip), method)(VERIFY, params)
    twin = LicenseVerifyView.as_view()(twin_request)
    twin.render()
    return [
        (r.status_code, json.loads(r.content) if r.content else None, r.get("Retry-After"))
        for r in (served, twin)
    ]


def test_the_url_is_documented_by_the_drf_view():
    assert resolve(VERIFY).func.cls is LicenseVerifyView


@pytest.mark.parametrize("case", ["valid", "limited", "revoked", "unknown", "hostile", "missing"])
def test_served_view_and_documented_twin_answer_alike(case):
    limited = LicenseTypeFactory(limits={"downloads": 5})
    keys = {
        "valid": _licence()[1],
        "limited": _licence(license_type=limited)[1],
        "revoked": _licence(status=License.Status.REVOKED)[1],
        "unknown": license_key_generate().key,
        "hostile": "' OR 1=1; --\x00",
    }
    params = {} if case == "missing" else {"key": keys[case]}
    served, twin = _answers("get", params, "10.20.0.1")
    assert served == twin
    assert served[0] == (400 if case == "missing" else 200)


def test_other_methods_are_405_naming_the_allowed_ones():
    response = Client().post(VERIFY, {"key": "x"})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD"
    assert Client().head(VERIFY, {"key": "x"}).status_code == 200


def test_throttled_answers_match_including_retry_after(settings):
    _rates(settings, license_verify="2/min")
    _, key = _licence()
    statuses = [
        Client(REMOTE_ADDR="10.20.0.2").get(VERIFY, {"key": key}).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    # The twin counts against the same per-address window: both are over it now.
    served, twin = _answers("get", {"key": key}, "10.20.0.2")
    assert served[0] == twin[0] == 429
    assert served[1]["error"]["code"] == twin[1]["error"]["code"] == "throttled"
    assert int(served[2]) > 0 and int(twin[2]) > 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_broken_since_its_last_use_is_replaced_not_a_500():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (pg_terminate_backend)")
    _, key = _licence()
    client = Client(REMOTE_ADDR="10.20.0.3")
    assert client.get(VERIFY, {"key": key}).json()["status"] == "valid"
    connection.ensure_connection()
    victim = connection.connection.get_backend_pid()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [victim])
    finally:
        other.close()
    response = client.get(VERIFY, {"key": key})
    assert (response.status_code, response.json()["status"]) == (200, "valid")
    assert connection.connection.get_backend_pid() != victim


def _forget_local_limits():
    """As if the next request reached another gunicorn worker (its own process memory)."""
    from content.api_licensing import guessing
    from revenue_site.throttling import LocalPerIpRateThrottle

    LocalPerIpRateThrottle.counter.clear()
    guessing.blocks.clear()


def test_guessing_keys_is_limited_across_workers_and_then_hides_valid_keys_too(settings):
    """Unknown keys count against a shared per-address limit; once over it the address gets
    429 for every key, a valid one included, so a guesser cannot learn of a hit."""
    _rates(settings, license_verify_failed="3/min")
    _, key = _licence()
    guesser = Client(REMOTE_ADDR="10.20.0.4")

    def status(k):
        return guesser.get(VERIFY, {"key": k}).status_code

    assert [status(f"lk_0000000000000000_guess{i}") for i in range(3)] == [200, 200, 200]
    assert status(key) == 200  # valid keys are not failures
    refused = guesser.get(VERIFY, {"key": "lk_0000000000000000_guess3"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert status(key) == 429  # blocked: a hit would not show
    served, twin = _answers("get", {"key": key}, "10.20.0.4")
    assert served[0] == twin[0] == 429
    # Another worker has not learnt of it yet: it answers a valid key, but its first guess
    # finds the shared count over the limit and blocks the address there too.
    _forget_local_limits()
    assert status(key) == 200
    assert status("lk_0000000000000000_guess4") == 429
    assert status(key) == 429
    # Other addresses are not affected.
    assert Client(REMOTE_ADDR="10.20.0.5").get(VERIFY, {"key": key}).status_code == 200


def test_the_overall_rate_is_counted_by_each_worker(settings):
    """All verifications per address are a capacity limit counted in the worker's memory: a
    second worker (another process) has its own count."""
    _rates(settings, license_verify="2/min")
    _, key = _licence()
    client = Client(REMOTE_ADDR="10.20.0.6")
    assert [client.get(VERIFY, {"key": key}).status_code for _ in range(3)] == [200, 200, 429]
    _forget_local_limits()
    assert client.get(VERIFY, {"key": key}).status_code == 200
