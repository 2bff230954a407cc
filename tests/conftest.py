"""Shared fixtures. Stripe fixtures live in tests/stripe_harness.py (the localstripe harness)."""

import pytest

pytest_plugins = ["tests.stripe_harness"]


@pytest.fixture
def celery_redis_worker(settings):
    """A real Celery worker thread consuming from the Redis broker (REDIS_URL).

    Results go to Redis too, for the test only, so a test can wait on `.get()`.
    """
    from celery.contrib.testing.worker import start_worker

    from revenue_site.celery import app

    saved = app.conf.result_backend
    app.conf.result_backend = settings.REDIS_URL
    try:
        with start_worker(
            app, pool="solo", perform_ping_check=False, shutdown_timeout=10
        ) as worker:
            yield worker
    finally:
        app.conf.result_backend = saved
