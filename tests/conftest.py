"""Shared fixtures. Stripe fixtures live in tests/stripe_harness.py (the localstripe harness)."""

import pytest

pytest_plugins = ["tests.stripe_harness"]


@pytest.fixture(autouse=True)
def _affiliate_link_cache_off(settings):
    """/r/<code> caches links per process; tests see every change at once (see test_tracking)."""
    settings.AFFILIATE_LINK_CACHE_SECONDS = 0


@pytest.fixture
def celery_eager():
    """Celery tasks run in-process (as in embedded mode) even when REDIS_URL is set."""
    from revenue_site.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = saved


@pytest.fixture
def celery_redis_worker(settings):
    """A real Celery worker thread consuming from the Redis broker (REDIS_URL).

    Results go to Redis too, for the test only: the fixture yields `wait(async_result)`, which
    reads the task's outcome from there. (Celery keeps the result backend per thread: the
    worker thread, started after the change, stores results; this thread reads them through
    an explicit backend.)
    """
    from celery.backends.redis import RedisBackend
    from celery.contrib.testing.worker import start_worker

    from revenue_site.celery import app

    backend = RedisBackend(app=app, url=settings.REDIS_URL)

    def wait(async_result, timeout=20):
        return app.AsyncResult(async_result.id, backend=backend).get(timeout=timeout)

    saved = app.conf.result_backend
    app.conf.result_backend = settings.REDIS_URL
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield wait
    finally:
        app.conf.result_backend = saved


@pytest.fixture(autouse=True)
def _mirror_owner_cache_clear():
    """The inbox caches the dj-stripe Account per API key per process; each test's database
    rollback removes that row, so the cache must not outlive the test."""
    from subscriptions.models import MirrorEvent

    MirrorEvent.owner_cache_clear()
    yield
    MirrorEvent.owner_cache_clear()


@pytest.fixture(autouse=True)
def _process_local_throttles_clear():
    """Some rate limits count in the worker's memory (revenue_site.throttling.
    LocalPerIpRateThrottle, the licence verification's guessing block): one test's counts
    must not limit the next one's requests."""
    from content.api_licensing import guessing
    from revenue_site.throttling import LocalPerIpRateThrottle

    LocalPerIpRateThrottle.counter.clear()
    guessing.blocks.clear()
    yield
    LocalPerIpRateThrottle.counter.clear()
    guessing.blocks.clear()
