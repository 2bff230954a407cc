"""Shared pieces of the billing API tests: clients, a pushed catalog, error-shape checks."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from subscriptions.models import PlanPrice
from subscriptions.services.catalog import plan_push_to_stripe
from tests.accounts.factories import UserFactory
from tests.subscriptions.factories import PlanFactory, PlanPriceFactory


@pytest.fixture(autouse=True)
def _clear_throttles():
    cache.clear()
    yield
    cache.clear()


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def pushed_price(**kwargs: Any) -> PlanPrice:
    """A PlanPrice pushed to the fake Stripe (its plan too); kwargs go to the factory."""
    price = PlanPriceFactory(**kwargs)
    plan_push_to_stripe(plan=price.plan)
    price.refresh_from_db()
    return price


@pytest.fixture
def catalog(stripe_fake):
    """basic (per-unit, 5 seats) and team (graduated tiers, 20 seats, sso) plans, pushed."""
    basic = PlanFactory(
        slug="basic", tier_rank=1, seats=5, api_calls_per_month=10_000, features={"sso": False}
    )
    team = PlanFactory(
        slug="team",
        tier_rank=2,
        seats=20,
        api_calls_per_month=None,
        features={"sso": True, "audit_log": True},
    )
    prices = {
        "basic": PlanPriceFactory(plan=basic, unit_amount=1000, lookup_key="basic-monthly"),
        "basic_yearly": PlanPriceFactory(
            plan=basic, yearly=True, unit_amount=10_000, lookup_key="basic-yearly"
        ),
        "team": PlanPriceFactory(plan=team, tiered=True, lookup_key="team-monthly", trial_days=14),
    }
    plan_push_to_stripe(plan=basic)
    plan_push_to_stripe(plan=team)
    for price in prices.values():
        price.refresh_from_db()
    return prices


@pytest.fixture
def alice(db):
    return UserFactory(email="alice@example.com")


@pytest.fixture
def bob(db):
    return UserFactory(email="bob@example.com")


def error_of(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "fields"} <= set(body["error"])
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]
