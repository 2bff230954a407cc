"""Providers and listings under concurrency (PostgreSQL row locks)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import stripe
from django.db import connection, connections
from rest_framework.test import APIClient

from ledger.models import PayeeProfile
from marketplace import listings
from marketplace.models import Listing
from tests.marketplace.factories import ListingFactory, ProviderFactory

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row-level concurrency needs PostgreSQL"
)
pytestmark = [pytest.mark.postgres, needs_postgres, pytest.mark.django_db(transaction=True)]


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at once in threads; each result, or the exception it raised."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        try:
            barrier.wait(timeout=10)
            return call()
        except Exception as exc:
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_onboarding_requests_create_one_connected_account(stripe_fake):
    provider = ProviderFactory(onboarded=False)

    def connect() -> int:
        client = APIClient()
        client.force_authenticate(provider.user)
        return client.post("/api/v1/provider/onboarding/connect", {}, format="json").status_code

    assert together(connect, connect, connect) == [201, 201, 201]
    assert len(stripe.Account.list().data) == 1
    profile = PayeeProfile.objects.get(payee_type="provider", payee_id=provider.pk)
    assert profile.stripe_account_id == stripe.Account.list().data[0].id


def test_approve_and_withdraw_at_once_one_wins():
    listing = ListingFactory(status=Listing.Status.PENDING_REVIEW)

    results = together(
        lambda: listings.listing_approve(listing=listing),
        lambda: listings.listing_withdraw(listing=listing),
    )

    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], listings.ListingStateError)
    listing.refresh_from_db()
    winner = next(r for r in results if isinstance(r, Listing))
    assert listing.status == winner.status in ("published", "draft")
