"""Staff console for content: creators (with how they are paid, and an earnings statement as
CSV for a period), items and their moderation (unpublish / archive with a reason, republish:
through the service, with a log entry), licence types inline, and licences (search by key
prefix, units used per licence, suspend / reinstate / revoke; money and keys read-only)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from content import earnings, licensing, payouts, selectors, services
from content.models import (
    LIMIT_FOR_EVENT,
    ContentItem,
    ContentShare,
    Creator,
    License,
    LicenseType,
    LicenseUsage,
)
from ledger.models import PayeeProfile
from revenue_site.admin import EstimatedCountPaginator
from revenue_site.money import format_money


class PayoutMethodFilter(admin.SimpleListFilter):
    """Onboarding: how creators are paid, or that they have not said yet (their earnings wait)."""

    title = "payout method"
    parameter_name = "payout_method"
    NONE = "none"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(self.NONE, "Not set (not paid yet)"), *PayeeProfile.Method.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == self.NONE:
            return queryset.filter(Q(payout_method__isnull=True) | Q(payout_method=""))
        if value in PayeeProfile.Method.values:
            return queryset.filter(payout_method=value)
        return queryset


def _last_month() -> tuple[date, date]:
    first_of_this = timezone.now().date().replace(day=1)
    end = first_of_this - timedelta(days=1)
    return end.replace(day=1), end


class StatementForm(forms.Form):
    start = forms.DateField(help_text="First day (UTC), YYYY-MM-DD.")
    end = forms.DateField(help_text="Last day (UTC), included.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise ValidationError({"end": ["On or after the first day."]})
        return data


@admin.register(Creator)
class CreatorAdmin(admin.ModelAdmin):
    list_display = (
        "display_name",
        "user",
        "platform_fee_percent",
        "status",
        "payout_method",
        "created_at",
    )
    list_filter = ("status", PayoutMethodFilter)
    search_fields = ("display_name", "user__email")
    ordering = ("display_name",)
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = ("created_at", "payout_profile")
    actions = ("earnings_statement",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Creator]:
        return selectors.creator_list_for_admin()

    @admin.display(description="payout method", ordering="payout_method")
    def payout_method(self, obj: Creator) -> str:
        method = getattr(obj, "payout_method", None)
        return PayeeProfile.Method(method).label if method else "— not set"

    @admin.display(description="payout profile")
    def payout_profile(self, obj: Creator) -> str:
        if obj.pk is None:
            return "Created with the creator."
        profile = payouts.creator_payee_profile(creator=obj)
        if profile is None:
            return "None yet."
        url = reverse("admin:ledger_payeeprofile_change", args=[profile.pk])
        label = profile.get_method_display() or "no method yet: earnings are kept, not paid"
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.action(description="Earnings statement (CSV) for a period", permissions=["view"])
    def earnings_statement(
        self, request: HttpRequest, queryset: QuerySet[Creator]
    ) -> HttpResponse | None:
        start, end = _last_month()
        form = StatementForm(
            request.POST if "apply" in request.POST else None,
            initial={"start": start, "end": end},
        )
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Creator earnings statement",
                "action": "earnings_statement",
                "form": form,
                "items": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "content/admin/statement.html", context)
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        body = earnings.earnings_statement_csv(creators=list(queryset), start=start, end=end)
        response = HttpResponse(body, content_type="text/csv")
        name = f"creator-earnings-{start.isoformat()}-{end.isoformat()}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

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
    list_filter = ("status", "suspended_by", "exclusive", "license_type__kind")
    search_fields = ("=key_prefix", "holder__email", "stripe_payment_intent_id")
    ordering = ("-created_at",)
    list_select_related = ("content", "license_type", "holder")
    raw_id_fields = ("license_type", "content", "holder")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # Issued by the purchase flow; status changes (revoke, suspend) go through its services.
    fields = readonly_fields = (
        "key_prefix", "content", "license_type", "holder", "status", "suspended_by", "exclusive",
        "amount",
        "currency", "stripe_payment_intent_id", "issued_at", "expires_at", "created_at",
        "usage_summary",
    )  # fmt: skip
    actions = ("suspend", "reinstate", "revoke")

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
        service = {
            "suspend": licensing.license_suspend,
            "reinstate": licensing.license_reinstate,
            "revoke": licensing.license_revoke,
        }[action]
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

    @admin.action(
        description="Revoke for good (no refund: refund in Stripe to reverse the split)",
        permissions=["change"],
    )
    def revoke(self, request: HttpRequest, queryset: QuerySet[License]) -> None:
        self._change_status(request, queryset, "revoke")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[License], search_term: str
    ) -> tuple[QuerySet[License], bool]:
        # A customer may paste their whole key: search by its visible prefix (never by the key).
        term = search_term.strip()
        if term.startswith(services.LICENSE_KEY_PREFIX) and term.count("_") >= 2:
            term = "_".join(term.split("_")[:2])
        if (
            term.startswith(services.LICENSE_KEY_PREFIX)
            and len(term) < services.LICENSE_KEY_PREFIX_LENGTH
        ):
            # The start of a prefix (read out over the phone): a case-sensitive prefix match.
            return queryset.filter(key_prefix__startswith=term), False
        return super().get_search_results(request, queryset, term)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: License) -> str:
        return format_money(obj.amount, obj.currency, with_code=True)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
