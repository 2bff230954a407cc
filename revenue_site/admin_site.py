"""The staff console's admin site: its index ordered by what staff do, Stripe's mirror last.

Installed through ``revenue_site.apps.StaffConsoleAdminConfig`` (Django's documented way to
replace the default site), so every ``admin.site.register`` in the apps lands here.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from revenue_site.admin import register_read_only

# Apps on the index in this order; apps not named here come after them, Stripe's mirror last.
APP_ORDER = (
    "subscriptions",
    "affiliates",
    "ledger",
    "content",
    "marketplace",
    "analytics",
    "accounts",
    "auth",
)
STRIPE_MIRROR_APP = "djstripe"
STRIPE_MIRROR_HEADING = "Stripe (read-only mirror)"
# Of dj-stripe's ~45 mirror models, the ones staff read; the others stay reachable by URL
# (and on the mirror's own app page) but are left off the index.
STRIPE_MIRROR_MODELS = (
    "Customer",
    "Subscription",
    "Invoice",
    "Charge",
    "Refund",
    "Dispute",
    "Payout",
    "Event",
    "Price",
    "Product",
)
# The mirror is Stripe's copy, changed only by Stripe (webhooks, resync), so its admins are
# read-only (`StaffConsoleSite.lock_stripe_mirror`), but for what staff configure there.
STRIPE_EDITABLE_MODELS = ("WebhookEndpoint", "APIKey")
# Credential-bearing rows: superusers reach them by URL, nobody needs them on the index.
HIDDEN_APPS = ("authtoken",)


class StaffConsoleSite(admin.AdminSite):
    site_header = "Revenue Agent System"
    site_title = "Revenue Agent System staff console"
    index_title = "Staff console"

    def lock_stripe_mirror(self) -> None:
        """dj-stripe's admins made read-only (ReadOnlyAdminMixin), webhook endpoints and API
        keys excepted. Run once every admin module is loaded (StaffConsoleAdminConfig)."""
        for model in list(self._registry):
            if (
                model._meta.app_label == STRIPE_MIRROR_APP
                and model.__name__ not in STRIPE_EDITABLE_MODELS
            ):
                register_read_only(self, model)

    def index(  # type: ignore[override]  # the dashboard's CSV export is no TemplateResponse
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The revenue dashboard (with the app list under it) for staff who may view
        analytics; the plain index for the others."""
        from analytics.dashboard import DASHBOARD_PERMISSION, dashboard_view

        if request.user.has_perm(DASHBOARD_PERMISSION):
            return dashboard_view(self, request, extra_context)
        return super().index(request, extra_context)

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps  # an app's own page lists all its models
        rank = {label: index for index, label in enumerate(APP_ORDER)}
        listed = []
        for app in apps:
            label = app["app_label"]
            if label in HIDDEN_APPS:
                continue
            if label == STRIPE_MIRROR_APP:
                app["name"] = STRIPE_MIRROR_HEADING
                order = {name: i for i, name in enumerate(STRIPE_MIRROR_MODELS)}
                app["models"] = sorted(
                    (m for m in app["models"] if m["object_name"] in order),
                    key=lambda m: order[m["object_name"]],
                )
            listed.append(app)
        last = len(APP_ORDER)
        return sorted(
            listed,
            key=lambda app: (
                app["app_label"] == STRIPE_MIRROR_APP,
                rank.get(app["app_label"], last),
                app["name"],
            ),
        )
