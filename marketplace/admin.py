"""Staff console for API billing: meters and API plans (defined here), which plan a customer is
rated on, the usage explorer (one customer's usage of a meter, `admin_explorer`) and customers'
API keys (listed, revoked through the service; secrets are never stored, so never shown)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from marketplace import (
    admin_listings,  # noqa: F401 (registers the services marketplace's admins)
    period_close,
    selectors,
    services,
)
from marketplace.admin_explorer import UsageExplorerForm, explorer_result, initial_values
from marketplace.models import (
    ApiKey,
    ApiPlan,
    ApiPlanCharge,
    CustomerApiPlan,
    Meter,
    UsageChargeLine,
    UsagePeriodClose,
)
from revenue_site.admin import EstimatedCountPaginator, ReadOnlyAdmin
from revenue_site.money import format_money

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

    def get_urls(self) -> list[URLPattern]:
        explorer = path(
            "explorer/",
            self.admin_site.admin_view(self.explorer_view),
            name="marketplace_meter_explorer",
        )
        return [explorer, *super().get_urls()]

    def explorer_view(self, request: HttpRequest) -> HttpResponse:
        """A customer's usage of a meter (`admin_explorer`). Anyone who may view meters;
        the admin site has already sent anyone not logged in as staff to the login page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        bound = "customer" in request.GET
        form = UsageExplorerForm(
            request.GET if bound else None,
            initial=initial_values(meter_id=request.GET.get("meter")),
        )
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Usage explorer",
            "opts": self.opts,
            "form": form,
            "result": None,
        }
        if bound and form.is_valid():
            customer = form.cleaned_data["customer"]
            start, end = form.range()
            summary = selectors.usage_summary(
                customer=customer,
                meter=form.cleaned_data["meter"],
                start=start,
                end=end,
                group_by=form.cleaned_data["group_by"],
            )
            context["result"] = explorer_result(summary)
            context["customer"] = customer
            if self.admin_site.get_model_admin(ApiKey).has_view_permission(request):
                changelist = reverse("admin:marketplace_apikey_changelist")
                context["api_keys_url"] = (
                    f"{changelist}?{urlencode({'user__id__exact': customer.pk})}"
                )
                context["api_key_count"] = selectors.usage_explorer_api_key_count(customer=customer)
        elif bound:
            context["suggestions"] = [
                {"email": user.email, "url": f"?{_query_with(request, customer=user.email)}"}
                for user in form.suggestions
            ]
        return TemplateResponse(request, "admin/marketplace/meter/explorer.html", context)


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


class UsageChargeLineInline(admin.TabularInline):
    model = UsageChargeLine
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "meter", "source", "reference", "quantity", "free_quantity", "billable_quantity",
        "amount", "description", "stripe_invoice_item_id",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UsagePeriodClose)
class UsagePeriodCloseAdmin(ReadOnlyAdmin):
    """Period closes: which customer's period was billed, for how much, with which Stripe
    invoice, and which are waiting for a retry (and why). A period billed in several
    currencies has one close per currency: its own and the splits off it (each its own row,
    invoice and retry). Read-only; "Retry now" resumes (a period's own close with its
    splits)."""

    list_display = (
        "customer", "period_start", "status", "amount_display", "split_display", "attempts",
        "next_attempt_at", "stripe_invoice_id", "updated_at",
    )  # fmt: skip
    list_filter = ("status", "period_start", ("split_from", admin.EmptyFieldListFilter))
    search_fields = ("customer__email", "stripe_invoice_id")
    ordering = ("-period_start", "customer__email")
    list_select_related = ("customer", "plan")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    inlines = (UsageChargeLineInline,)
    actions = ("retry_now",)
    fields = readonly_fields = (
        "customer", "period_start", "period_end", "status", "plan", "currency", "amount",
        "split_from", "splits_display", "stripe_invoice_id", "attempts", "last_error",
        "next_attempt_at", "created_at", "updated_at",
    )  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[UsagePeriodClose]:
        return selectors.period_close_list_for_admin()

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: UsagePeriodClose) -> str:
        if obj.amount is None:
            return "—"
        return format_money(obj.amount, obj.currency, with_code=True) if obj.currency else "0"

    @admin.display(description="split off")
    def split_display(self, obj: UsagePeriodClose) -> str:
        if obj.split_from_id is None:
            return "—"
        url = reverse("admin:marketplace_usageperiodclose_change", args=[obj.split_from_id])
        return format_html('<a href="{}">close {}</a>', url, obj.split_from_id)

    @admin.display(description="other currencies")
    def splits_display(self, obj: UsagePeriodClose) -> str:
        splits = list(obj.splits.order_by("currency"))
        if not splits:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{} ({})</a>',
            (
                (
                    reverse("admin:marketplace_usageperiodclose_change", args=[split.pk]),
                    format_money(split.amount or 0, split.currency, with_code=True),
                    split.get_status_display(),
                )
                for split in splits
            ),
        )

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("marketplace.change_usageperiodclose")

    @admin.action(description="Retry now (closes not finished)", permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[UsagePeriodClose]) -> None:
        done = 0
        for close in queryset.filter(
            status__in=[UsagePeriodClose.Status.RATING, UsagePeriodClose.Status.INVOICING]
        ).order_by("pk"):
            result = period_close.usage_period_close_retry(close=close)
            self.log_change(request, close, f"Retried through the admin: {result.status}.")
            if result.last_error:
                self.message_user(request, f"{close}: {result.last_error}", level=messages.WARNING)
            done += 1
        self.message_user(request, f"{done} close(s) retried.", level=messages.SUCCESS)


def _query_with(request: HttpRequest, **values: str) -> str:
    query = request.GET.copy()
    for name, value in values.items():
        query[name] = value
    return query.urlencode()


from marketplace import (  # noqa: E402
    admin_orders,  # noqa: F401 (registers the orders' admin)
    admin_usage,  # noqa: F401 (registers the usage events' admin)
)
