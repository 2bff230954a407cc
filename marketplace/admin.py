"""Staff console for API billing: meters and API plans (defined here), which plan a customer is
rated on, and customers' API keys (listed, revoked through the service; secrets are never
stored, so never shown)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from marketplace import selectors, services
from marketplace.models import ApiKey, ApiPlan, ApiPlanCharge, CustomerApiPlan, Meter

# Fixed once a meter exists: events are rolled up under the definition they arrived with.
_METER_DEFINITION = ("code", "aggregation", "property", "filters")


@admin.register(Meter)
class MeterAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "unit", "aggregation", "property", "is_active", "created_at")
    list_filter = ("aggregation", "is_active")
    search_fields = ("code", "name")
    ordering = ("code",)
    list_select_related = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Meter]:
        return selectors.meter_list_for_admin()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (*_METER_DEFINITION, "created_at") if obj is not None else ("created_at",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # events point at meters; deactivate instead


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "name",
        "user",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("prefix", "name", "user__email")
    ordering = ("-created_at",)
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    fields = (
        "user",
        "name",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ("revoke",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        return selectors.api_key_list_for_admin()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # customers create keys with their token (the key is shown only to them)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the row stays as the record of the key

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        done = 0
        for api_key in queryset.filter(revoked_at__isnull=True).order_by("pk"):
            services.api_key_revoke(api_key=api_key)
            self.log_change(request, api_key, "Revoked through the admin.")
            done += 1
        self.message_user(request, f"{done} API key(s) revoked.", level=messages.SUCCESS)


class ApiPlanChargeInline(admin.StackedInline):
    model = ApiPlanCharge
    extra = 0
    autocomplete_fields = ("meter",)
    fields = (
        ("meter", "price_model", "free_units"),
        "unit_amount",
        ("package_size", "package_amount", "package_round"),
        "tiers",
        "percent",
    )


@admin.register(ApiPlan)
class ApiPlanAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "currency", "is_default", "is_active", "created_at")
    list_filter = ("is_default", "is_active", "currency")
    search_fields = ("code", "name")
    ordering = ("code",)
    list_select_related = ()
    inlines = (ApiPlanChargeInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiPlan]:
        return selectors.api_plan_list_for_admin()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # closed periods name their plan; deactivate instead


@admin.register(CustomerApiPlan)
class CustomerApiPlanAdmin(admin.ModelAdmin):
    list_display = ("customer", "plan", "assigned_at")
    list_filter = ("plan",)
    search_fields = ("customer__email", "plan__code")
    ordering = ("customer__email",)
    list_select_related = ("customer", "plan")
    raw_id_fields = ("customer",)
    autocomplete_fields = ("plan",)
