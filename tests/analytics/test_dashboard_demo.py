"""The dashboard over `make run`'s demo business (every stream seeded): the demo staff land on
it, every panel renders, the demo's affiliate earnings and pending application show.

(Here the fake Stripe delivers no webhooks, so the demo has no MRR movements: under `make run`
the webhook endpoint that `stripe_bootstrap` registers records them.)"""

import io
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_the_demo_staff_land_on_the_dashboard(client, stripe_fake):
    call_command("seed_demo", stdout=io.StringIO())
    cache.clear()
    today = timezone.now().date()
    year = {"start": (today - timedelta(days=364)).isoformat(), "end": today.isoformat()}
    for email in ("admin@example.com", "finance@example.com"):
        client.force_login(User.objects.get(email=email))
        response = client.get("/admin/", {**year, "currency": "usd"})
        assert response.status_code == 200
        board = response.context["board"]
        assert board.unavailable == {}
        assert len(board.tiles) == 10
        assert board.tables["top_affiliates"].rows  # the demo's commissions, from the ledger
        queues = {row["key"]: row["count"] for row in board.tables["queues"].rows}
        assert queues["affiliate_applications"] == 1  # the demo's pending affiliate
        for table in board.tables:
            export = client.get("/admin/", {**year, "currency": "usd", "export": table})
            assert export.status_code == 200, table
