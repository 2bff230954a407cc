"""The API's rate limits (revenue_site.throttling): a sliding window over per-window counters in
the default cache (local memory here, Redis when REDIS_URL is set), one per scope and client."""

from __future__ import annotations

import logging
import secrets

import pytest
from django.test import override_settings
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from revenue_site.throttling import PerIpRateThrottle


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def throttle_at(clock: Clock, rate: str):
    """A per-IP throttle of a scope of its own (a fresh rate entry) read off ``clock``."""
    scope = f"test-{secrets.token_hex(4)}"

    class Throttle(PerIpRateThrottle):
        timer = clock

    Throttle.scope = scope
    return Throttle, scope


@pytest.fixture
def limited(settings):
    def make(rate: str, clock: Clock):
        throttle, scope = throttle_at(clock, rate)
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                scope: rate,
            },
        }
        address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"

        def hit() -> tuple[bool, float]:
            request = Request(APIRequestFactory().get("/x", REMOTE_ADDR=address))
            instance = throttle()
            allowed = instance.allow_request(request, None)  # type: ignore[arg-type]
            return allowed, (0.0 if allowed else instance.wait())

        return hit

    return make


# A window start far from the process's real time, so runs never share counters.
T0 = 60.0 * (10_000_000 + secrets.randbelow(1_000_000))


def test_the_rate_holds_within_a_window_and_retry_after_says_when_it_frees_up(limited):
    clock = Clock(T0)
    hit = limited("3/min", clock)
    for second in (0, 1, 2):
        clock.now = T0 + second
        assert hit()[0]
    clock.now = T0 + 3
    allowed, wait = hit()
    assert not allowed
    # The 4 counted requests of this window weigh on the next one; a request passes again
    # once 1 + 4 * (share of the previous window left) <= 3, i.e. half-way through it.
    assert wait == pytest.approx((60 - 3) + 30)
    clock.now = T0 + 3 + wait - 1
    assert not hit()[0]


def test_no_burst_of_twice_the_rate_at_the_window_edge(limited):
    clock = Clock(T0)
    hit = limited("10/min", clock)
    clock.now = T0 + 59.5
    assert all(hit()[0] for _ in range(10))
    clock.now = T0 + 60.5  # the next window: a fixed window would allow 10 more here
    assert not hit()[0]


def test_the_limit_frees_up_as_the_previous_window_slides_out(limited):
    clock = Clock(T0)
    hit = limited("4/min", clock)
    clock.now = T0 + 10
    assert all(hit()[0] for _ in range(4))
    clock.now = T0 + 60 + 45  # a quarter of the previous window left: 1 + 4 * 0.25 <= 4
    assert hit()[0]
    assert hit()[0]


@pytest.mark.django_db
def test_a_denied_request_answers_429_with_retry_after(client, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "license_verify": "2/hour",
        },
    }
    address = f"10.77.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    path = "/api/v1/content/licenses/verify"
    statuses = [
        client.get(path, {"key": "lk_x"}, REMOTE_ADDR=address).status_code for _ in range(2)
    ]
    assert statuses == [200, 200]
    response = client.get(path, {"key": "lk_x"}, REMOTE_ADDR=address)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 2 * 3600


def test_an_unreachable_cache_lets_requests_through_and_says_so(limited, caplog):
    unreachable = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # the discard port: nothing listens
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.5,
            },
        }
    }
    clock = Clock(T0)
    hit = limited("1/min", clock)
    with override_settings(CACHES=unreachable), caplog.at_level(logging.WARNING):
        assert [hit()[0] for _ in range(3)] == [True, True, True]
    assert "not counted: cache unavailable" in caplog.text
