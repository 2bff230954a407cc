"""The staff console's home: business apps first in the order staff work, Stripe's mirror last."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_index_lists_business_apps_first_and_a_short_stripe_mirror_last(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    apps = response.context["app_list"]
    labels = [app["app_label"] for app in apps]
    assert labels[:3] == ["subscriptions", "affiliates", "ledger"]
    assert labels[-1] == "djstripe"
    assert "authtoken" not in labels
    mirror = apps[-1]
    assert mirror["name"] == "Stripe (read-only mirror)"
    assert [m["object_name"] for m in mirror["models"]] == [
        "Customer", "Subscription", "Invoice", "Charge", "Refund", "Dispute", "Payout",
        "Event", "Price", "Product",
    ]  # fmt: skip
    names = [m["name"] for app in apps for m in app["models"]]
    assert "Payout batches" in names
    assert "Payout batchs" not in names


def test_the_mirror_app_page_still_lists_every_mirror_model(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(reverse("admin:app_list", args=["djstripe"]))
    assert response.status_code == 200
    [mirror] = response.context["app_list"]
    assert len(mirror["models"]) > 30
