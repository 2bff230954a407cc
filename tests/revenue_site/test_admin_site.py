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


def test_the_stripe_mirror_admins_are_read_only_through_the_one_mixin(rf):
    from django.contrib import admin
    from djstripe import models as djm
    from djstripe.admin import admin as djstripe_admin

    from revenue_site.admin import ReadOnlyAdminMixin

    request = rf.get("/admin/")
    request.user = UserFactory(is_staff=True, is_superuser=True)
    mirror = [m for m in admin.site._registry if m._meta.app_label == "djstripe"]
    assert len(mirror) > 30
    for model in mirror:
        model_admin = admin.site._registry[model]
        editable = model in (djm.WebhookEndpoint, djm.APIKey)
        assert isinstance(model_admin, ReadOnlyAdminMixin) is not editable, model
        assert model_admin.has_change_permission(request) is editable, model
        assert model_admin.has_view_permission(request), model
    # dj-stripe's own admin stays underneath: its columns and search are kept.
    customers = admin.site._registry[djm.Customer]
    assert isinstance(customers, djstripe_admin.CustomerAdmin)
    assert "email" in customers.search_fields
