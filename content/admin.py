"""Staff console for content: creators (with their payee profile), items and their moderation
(unpublish / archive with a reason, republish: through the service, with a log entry),
licence types inline, and licences (search by key prefix; money and keys read-only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from content import licensing, selectors, services
from content.models import (
    LIMIT_FOR_EVENT,
    ContentItem,
    ContentShare,
    Creator,
    License,
    LicenseType,
    LicenseUsage,
)
from revenue_site.admin import EstimatedCountPaginator
from revenue_site.money import format_money


@admin.register(Creator)
class CreatorAdmin(admin.ModelAdmin):
    list_display = ("display_name", "user", "platform_fee_percent", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("display_name", "user__email")
    ordering = ("display_name",)
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = ("created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Creator]:
        return selectors.creator_list_for_admin()

    def save_model(self, request: HttpRequest, obj: Creator, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Staff-created creators are payees of the payout engine like API-created ones.
        services.creator_payee_profile_ensure(creator=obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # items and licences point at creators; suspend instead


class LicenseTypeInline(admin.StackedInline):
    model = LicenseType
    extra = 0
    can_delete = False  # licences point at their type; deactivate instead
    fields = (
        ("kind", "pricing", "is_active"),
        ("amount", "currency", "recurring_interval", "stripe_price_id"),
        ("per_use_unit_amount", "term_days", "overage"),
        "limits",
    )


class ContentShareInline(admin.TabularInline):
    """Shares are set through the service (exactly 100 %); shown here, read-only."""

    model = ContentShare
    extra = 0
    can_delete = False
    fields = readonly_fields = ("creator", "percent")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ModerationForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Shown to the creator.",
        max_length=2000,
    )


@admin.register(ContentItem)
class ContentItemAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "kind", "status", "published_at", "moderation_note")
    list_filter = ("status", "kind")
    search_fields = ("title", "owner__display_name", "owner__user__email")
    ordering = ("-created_at",)
    list_select_related = ("owner", "owner__user")
    raw_id_fields = ("owner",)
    readonly_fields = ("status", "moderation_note", "published_at", "created_at", "updated_at")
    fields = (
        "owner",
        "title",
        "kind",
        "description",
        "platform_fee_percent",
        "status",
        "moderation_note",
        "published_at",
        "created_at",
        "updated_at",
    )
    inlines = (LicenseTypeInline, ContentShareInline)
    actions = ("unpublish", "archive", "republish")
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ContentItem]:
        return selectors.content_item_list_for_admin()

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if formset.model is not LicenseType:
            return
        saved = [(obj, set[str]()) for obj in formset.new_objects]
        saved += [(obj, set(fields)) for obj, fields in formset.changed_objects]
        for license_type, changed in saved:
            # A recurring type's Stripe Price (pushed now, or at its first sale).
            services.license_type_price_after_admin_save(license_type=license_type, changed=changed)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # licences point at items; archive instead

    def _moderate(
        self, request: HttpRequest, queryset: QuerySet[ContentItem], action: str
    ) -> HttpResponse | None:
        reason = ""
        if action != "republish":
            form = ModerationForm(request.POST if "apply" in request.POST else None)
            if not form.is_valid():
                context = {
                    **self.admin_site.each_context(request),
                    "title": f"{action.capitalize()} content",
                    "action": action,
                    "form": form,
                    "items": queryset,
                    "opts": self.model._meta,
                    "action_checkbox_name": ACTION_CHECKBOX_NAME,
                }
                return TemplateResponse(request, "content/admin/moderate.html", context)
            reason = form.cleaned_data["reason"]
        done = 0
        for item in queryset.order_by("pk"):
            try:
                services.content_item_moderate(item=item, action=action, reason=reason)
            except ValidationError as exc:
                self.message_user(request, f"{item}: {'; '.join(exc.messages)}", messages.ERROR)
                continue
            note = f" ({reason})" if reason else ""
            self.log_change(request, item, f"Moderation: {action}{note}.")
            done += 1
        self.message_user(request, f"{done} item(s): {action} done.", level=messages.SUCCESS)
        return None

    @admin.action(description="Unpublish (back to draft) with a reason", permissions=["change"])
    def unpublish(self, request: HttpRequest, queryset: QuerySet[ContentItem]) -> Any:
        return self._moderate(request, queryset, "unpublish")

    @admin.action(description="Archive with a reason", permissions=["change"])
    def archive(self, request: HttpRequest, queryset: QuerySet[ContentItem]) -> Any:
        return self._moderate(request, queryset, "archive")

    @admin.action(description="Republish (clears the moderation note)", permissions=["change"])
    def republish(self, request: HttpRequest, queryset: QuerySet[ContentItem]) -> Any:
        return self._moderate(request, queryset, "republish")


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = (
        "key_prefix",
        "content",
        "license_type",
        "holder",
        "status",
        "amount_display",
        "issued_at",
        "expires_at",
        "units_used",
    )
    list_filter = ("status", "exclusive", "license_type__kind")
    search_fields = ("=key_prefix", "holder__email", "stripe_payment_intent_id")
    ordering = ("-created_at",)
    list_select_related = ("content", "license_type", "holder")
    raw_id_fields = ("license_type", "content", "holder")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # Issued by the purchase flow; status changes (revoke, suspend) go through its services.
    fields = readonly_fields = (
        "key_prefix", "content", "license_type", "holder", "status", "exclusive", "amount",
        "currency", "stripe_payment_intent_id", "issued_at", "expires_at", "created_at",
        "usage_summary",
    )  # fmt: skip
    actions = ("suspend", "reinstate")

    def get_queryset(self, request: HttpRequest) -> QuerySet[License]:
        # Units used is a per-row subquery: computed for the page's rows only.
        return licensing.license_list_for_admin_with_usage()

    @admin.display(description="units used", ordering="units_used")
    def units_used(self, obj: License) -> int:
        return int(getattr(obj, "units_used", 0))

    @admin.display(description="usage (accepted units / limit, overage)")
    def usage_summary(self, obj: License) -> str:
        used = selectors.license_usage_counts(license=obj)
        limits = obj.license_type.limits or {}
        overage = licensing.license_overage(license=obj, used=used)
        parts = []
        for event, count in used.items():
            name = LIMIT_FOR_EVENT[LicenseUsage.Event(event)]
            limit = limits.get(name)
            text = f"{event}: {count}" + (f" / {limit}" if limit is not None else "")
            if overage.get(name):
                text += f" (+{overage[name]} overage)"
            parts.append(text)
        return "; ".join(parts)

    def _change_status(
        self, request: HttpRequest, queryset: QuerySet[License], action: str
    ) -> None:
        service = licensing.license_suspend if action == "suspend" else licensing.license_reinstate
        done = 0
        for license in queryset.order_by("pk"):
            try:
                changed = service(license=license)
            except ValidationError as exc:
                self.message_user(request, f"{license}: {'; '.join(exc.messages)}", messages.ERROR)
                continue
            self.log_change(request, changed, f"Licence {action}: now {changed.status}.")
            done += 1
        self.message_user(request, f"{done} licence(s): {action} done.", level=messages.SUCCESS)

    @admin.action(description="Suspend (verification answers suspended)", permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[License]) -> None:
        self._change_status(request, queryset, "suspend")

    @admin.action(description="Reinstate suspended licences", permissions=["change"])
    def reinstate(self, request: HttpRequest, queryset: QuerySet[License]) -> None:
        self._change_status(request, queryset, "reinstate")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[License], search_term: str
    ) -> tuple[QuerySet[License], bool]:
        # A customer may paste their whole key: search by its visible prefix (never by the key).
        term = search_term.strip()
        if term.startswith(services.LICENSE_KEY_PREFIX) and term.count("_") >= 2:
            term = "_".join(term.split("_")[:2])
        return super().get_search_results(request, queryset, term)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: License) -> str:
        return format_money(obj.amount, obj.currency, with_code=True)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
