from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from tests.devstripe.recording import RecordingClient


@pytest.fixture
def recorder(stripe_fake: Any) -> Iterator[RecordingClient]:
    """The fake Stripe with every response body the stripe client receives recorded."""
    saved = stripe.default_http_client
    client = RecordingClient()
    stripe.default_http_client = client
    try:
        yield client
    finally:
        stripe.default_http_client = saved
