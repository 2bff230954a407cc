import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle histories and login-failure counters live in the cache; start each test clean."""
    cache.clear()
    yield
    cache.clear()
