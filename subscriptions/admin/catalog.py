"""Staff console for the plan catalog: plans with their prices inline, pushed and archived
through the catalog services (each action leaves a message and an admin log entry). A price's
completeness (amount or tiers) is checked by ``PlanPrice.clean``, which the inline's form runs."""

from __future__ import annotations

from typing import Any

import stripe
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from revenue_site.stripe_errors import stripe_failure
from subscriptions import selectors
from subscriptions.models import Plan, PlanPrice
from subscriptions.services.catalog import CatalogError, plan_archive, plan_push_to_stripe


class PlanPriceForm(forms.ModelForm):
    class Meta:
        model = PlanPrice
        fields = [
            "nickname",
            "lookup_key",
            "currency",
            "interval",
            "interval_count",
            "billing_scheme",
            "unit_amount",
            "tiers_mode",
            "tiers",
            "usage_type",
            "trial_days",
            "active",
        ]

    def clean(self) -> dict[str, Any]:
        # What makes a price complete is the model's rule (PlanPrice.clean, run by the
        # ModelForm); what the admin adds is who may change the row.
        data = super().clean() or {}
        # Compared as cleaned values: the unchanged form of an admin plan's inline is clean.
        stripe_made = self.instance.pk and self.instance.source == PlanPrice.Source.STRIPE
        if stripe_made and any(
            name in data and data[name] != getattr(self.instance, name) for name in self.Meta.fields
        ):
            raise forms.ValidationError(
                "This price was made in Stripe: change it there (the sync and webhooks bring it "
                "here)."
            )
        return data


class PlanPriceInline(admin.StackedInline):
    model = PlanPrice
    form = PlanPriceForm
    extra = 0
    readonly_fields = ["stripe_price_id", "source"]
    fields = [
        ("nickname", "lookup_key", "active"),
        ("currency", "interval", "interval_count", "usage_type"),
        ("billing_scheme", "unit_amount", "tiers_mode"),
        "tiers",
        "trial_days",
        ("stripe_price_id", "source"),
    ]
    show_change_link = False

    def _stripe_plan(self, obj: Any) -> bool:
        return obj is not None and obj.source == Plan.Source.STRIPE

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A plan made in Stripe gets its prices from Stripe.
        return not self._stripe_plan(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._stripe_plan(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # prices are deactivated, never deleted


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "tier_rank",
        "seats",
        "api_calls_per_month",
        "price_count",
        "stripe_product_id",
        "source",
        "is_archived",
    ]
    list_filter = ["is_archived", "source"]
    search_fields = ["name", "slug", "stripe_product_id"]
    ordering = ["tier_rank", "name"]
    list_select_related = False  # no foreign keys
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ["stripe_product_id", "source", "is_archived", "created_at", "updated_at"]
    # A plan made in Stripe is edited there (Product fields and metadata, see the README).
    stripe_owned_fields = [
        "name",
        "slug",
        "description",
        "tier_rank",
        "seats",
        "api_calls_per_month",
        "features",
    ]
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "tier_rank"]}),
        (
            "Entitlements (empty = unlimited)",
            {"fields": ["seats", "api_calls_per_month", "features"]},
        ),
        (
            "Stripe",
            {"fields": ["stripe_product_id", "source", "is_archived", "created_at", "updated_at"]},
        ),
    ]
    inlines = [PlanPriceInline]
    actions = ["push_to_stripe", "archive"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plan]:
        return selectors.plan_list_admin()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.source == Plan.Source.STRIPE:
            readonly += self.stripe_owned_fields
        return readonly

    def get_prepopulated_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.source == Plan.Source.STRIPE:
            return {}  # slug is read-only there
        return super().get_prepopulated_fields(request, obj)

    @admin.display(description="prices", ordering="price_count")
    def price_count(self, obj: Plan) -> int:
        return int(getattr(obj, "price_count", 0))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # archive instead: Stripe keeps the products and prices

    def _run(self, request: HttpRequest, queryset: QuerySet[Plan], service: Any, verb: str) -> None:
        done = 0
        for plan in queryset.order_by("pk"):
            try:
                plan = service(plan=plan)
            except (CatalogError, stripe.StripeError) as exc:
                message = (
                    stripe_failure(exc).message if isinstance(exc, stripe.StripeError) else str(exc)
                )
                self.message_user(request, f"{plan}: {message}", messages.ERROR)
                continue
            self.log_change(request, plan, f"{verb} ({plan.stripe_product_id})")
            done += 1
        if done:
            self.message_user(request, f"{verb}: {done} plan(s).", messages.SUCCESS)

    @admin.action(description="Push to Stripe (product and prices)", permissions=["change"])
    def push_to_stripe(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        self._run(request, queryset, plan_push_to_stripe, "Pushed to Stripe")

    @admin.action(description="Archive (deactivate prices in Stripe)", permissions=["change"])
    def archive(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        self._run(request, queryset, plan_archive, "Archived")
