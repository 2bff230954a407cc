"""Staff console for the services marketplace: categories and their commission rates,
providers with their payout onboarding, listings and the moderation queue.

Listings are the providers' own: staff do not edit them, they approve, reject (with a reason)
or pause (with a reason) through ``marketplace.listings``; providers are suspended or
reinstated through ``marketplace.providers``. Every action leaves a log entry per row.
Imported by ``marketplace.admin`` (admin autodiscovery loads that module only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from marketplace import listing_selectors as selectors
from marketplace import listings, providers
from marketplace.models import Category, Listing, ListingPackage, ListingReviewQueue, Provider
from marketplace.providers import ProviderError
from revenue_site.admin import EstimatedCountPaginator
from revenue_site.money import format_money
from revenue_site.stripe_errors import BillingError


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "commission_percent", "created_at")
    search_fields = ("name", "slug")
    ordering = ("name",)
    list_select_related = ()
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Category]:
        return selectors.category_list_for_admin()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # listings point at categories


class OnboardingFilter(admin.SimpleListFilter):
    title = "payout onboarding"
    parameter_name = "onboarding"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("complete", "Complete"), ("incomplete", "Incomplete")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "complete":
            return queryset.filter(onboarding_complete=True)
        if self.value() == "incomplete":
            return queryset.filter(onboarding_complete=False)
        return queryset


def _run(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    rows: QuerySet[Any],
    action: str,
    service: Callable[[Any], Any],
    note: str = "",
) -> None:
    """Run ``service`` on each row (in pk order), log each change, report the outcome."""
    done = 0
    for row in rows.order_by("pk"):
        try:
            service(row)
        except (ProviderError, BillingError) as exc:
            model_admin.message_user(request, f"{row}: {exc.message}", messages.ERROR)
            continue
        except ValidationError as exc:
            model_admin.message_user(request, f"{row}: {'; '.join(exc.messages)}", messages.ERROR)
            continue
        model_admin.log_change(request, row, f"{action.capitalize()}{note}.")
        done += 1
    if done:
        model_admin.message_user(request, f"{done} row(s): {action} done.", messages.SUCCESS)


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = (
        "display_name",
        "user",
        "status",
        "payout_method",
        "onboarding",
        "payouts_enabled_column",
        "stripe_account",
        "commission_percent_override",
        "created_at",
    )
    list_filter = ("status", OnboardingFilter)
    search_fields = ("display_name", "user__email")
    ordering = ("display_name",)
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    fields = ("user", "display_name", "status", "commission_percent_override", "created_at")
    readonly_fields = ("user", "status", "created_at")
    actions = ("suspend", "reinstate", "refresh_from_stripe")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Provider]:
        return selectors.provider_list_for_admin()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # users become providers through the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # listings and payouts point at providers; suspend instead

    @admin.display(description="payout method", ordering="payout_method")
    def payout_method(self, provider: Provider) -> str:
        return getattr(provider, "payout_method", None) or "—"

    @admin.display(description="onboarding complete", boolean=True)
    def onboarding(self, provider: Provider) -> bool:
        return bool(getattr(provider, "onboarding_complete", False))

    @admin.display(description="Stripe payouts enabled", boolean=True)
    def payouts_enabled_column(self, provider: Provider) -> bool | None:
        if not getattr(provider, "stripe_account", None):
            return None
        return bool(getattr(provider, "payouts_enabled", False))

    @admin.display(description="Stripe account")
    def stripe_account(self, provider: Provider) -> str:
        return getattr(provider, "stripe_account", None) or "—"

    @admin.action(description="Suspend (their listings leave the catalog)", permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        _run(self, request, queryset, "suspend", lambda p: providers.provider_suspend(provider=p))

    @admin.action(description="Reinstate suspended providers", permissions=["change"])
    def reinstate(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        _run(
            self, request, queryset, "reinstate", lambda p: providers.provider_reinstate(provider=p)
        )

    @admin.action(description="Refresh Stripe Connect status from Stripe", permissions=["change"])
    def refresh_from_stripe(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        _run(
            self,
            request,
            queryset,
            "refresh from Stripe",
            lambda p: providers.provider_connect_refresh(provider=p),
        )


class PackageInline(admin.TabularInline):
    """A listing's packages, as the provider set them (read-only)."""

    model = ListingPackage
    extra = 0
    can_delete = False
    fields = readonly_fields = ("tier", "name", "price_display", "delivery_days", "revisions")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="price")
    def price_display(self, package: ListingPackage) -> str:
        return format_money(package.price, package.currency)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        help_text="Shown to the provider.",
    )


class _ListingModerationAdmin(admin.ModelAdmin):
    """What the listings changelist and the moderation queue share: the read-only listing,
    its packages, and the moderation actions."""

    search_fields = ("title", "provider__display_name", "provider__user__email")
    list_select_related = ("provider", "provider__user", "category")
    raw_id_fields = ("provider", "category")
    fields = (
        "provider",
        "category",
        "title",
        "description",
        "status",
        "paused_by_staff",
        "moderation_reason",
        "submitted_at",
        "published_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (PackageInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # providers write listings; staff moderate them

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="provider", ordering="provider__display_name")
    def provider_link(self, listing: Listing) -> str:
        url = reverse("admin:marketplace_provider_change", args=[listing.provider_id])
        return format_html('<a href="{}">{}</a>', url, listing.provider.display_name)

    def _with_reason(
        self,
        request: HttpRequest,
        queryset: QuerySet[Listing],
        action: str,
        service: Callable[..., Listing],
    ) -> HttpResponse | None:
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": f"{action.capitalize()} listings",
                "action": action,
                "form": form,
                "items": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "marketplace/admin/listing_reason.html", context)
        reason = form.cleaned_data["reason"]
        _run(
            self,
            request,
            queryset,
            action,
            lambda listing: service(listing=listing, reason=reason),
            note=f" ({reason})",
        )
        return None

    @admin.action(description="Approve (publish)", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[Listing]) -> None:
        _run(self, request, queryset, "approve", lambda row: listings.listing_approve(listing=row))

    @admin.action(description="Reject back to draft, with a reason", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[Listing]) -> HttpResponse | None:
        return self._with_reason(request, queryset, "reject", listings.listing_reject)

    @admin.action(description="Pause a published listing, with a reason", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Listing]) -> HttpResponse | None:
        return self._with_reason(request, queryset, "pause", listings.listing_staff_pause)


@admin.register(Listing)
class ListingAdmin(_ListingModerationAdmin):
    list_display = (
        "title",
        "provider_link",
        "category",
        "status",
        "paused_by_staff",
        "submitted_at",
        "published_at",
        "moderation_reason",
    )
    list_filter = ("status", "paused_by_staff", "category")
    ordering = ("-created_at",)
    actions = ("approve", "reject", "pause")
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Listing]:
        return selectors.listing_list_for_admin()


@admin.register(ListingReviewQueue)
class ListingReviewQueueAdmin(_ListingModerationAdmin):
    """Listings pending review, oldest submission first: approve or reject."""

    list_display = ("title", "provider_link", "category", "submitted_at", "price_from")
    list_filter = ("category",)
    ordering = ("submitted_at", "pk")
    actions = ("approve", "reject")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Listing]:
        return selectors.listing_review_queue()

    @admin.display(description="from")
    def price_from(self, listing: Listing) -> str:
        packages = list(listing.packages.all())  # prefetched by the selector
        if not packages:
            return "—"
        cheapest = min(packages, key=lambda p: p.price)
        return format_money(cheapest.price, cheapest.currency)
