"""Staff console: programs, the approval queue, links, clicks, referrals.

Programs edit their allow-list as hosts, one per line (validated bare hostnames; the landing
URL's host must be among them) and their tiers as JSON (validated). Affiliates are the approval
queue: pending first; approve / reject / suspend are actions calling the application services,
each leaving a log entry. Clicks and referrals are read-only records.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest

from accounts.selectors import request_user
from affiliates.models import Affiliate, Click, Program, Referral, ReferralLink
from affiliates.selectors import links_with_click_counts
from affiliates.services import applications, tracking
from revenue_site.admin import EstimatedCountPaginator, ReadOnlyAdmin

# --- programs -------------------------------------------------------------------------------


class HostListField(forms.CharField):
    """A JSON list of hosts edited as text, one host per line (or comma separated)."""

    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return "\n".join(str(v) for v in value)
        if isinstance(value, str) and value.startswith("["):
            try:
                return "\n".join(json.loads(value))
            except ValueError:
                return value
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        hosts: list[str] = []
        for raw in text.replace(",", "\n").splitlines():
            raw = raw.strip()
            if not raw:
                continue
            host = tracking.host_normalise(raw)
            if host is None or any(c in raw for c in "/:@?#\\ "):
                raise forms.ValidationError(
                    f"{raw!r} is not a bare hostname (no scheme, port or path)."
                )
            if host not in hosts:
                hosts.append(host)
        return hosts


class ProgramForm(forms.ModelForm):
    allowed_hosts = HostListField(
        required=True, help_text="Hosts links may land on, one per line, e.g. www.example.com."
    )

    class Meta:
        model = Program
        fields = [
            "name",
            "slug",
            "landing_url",
            "allowed_hosts",
            "attribution_window_days",
            "commission_type",
            "commission_rate",
            "commission_flat_amount",
            "duration",
            "recurring_months",
            "tiers",
            "hold_days",
            "minimum_payout",
            "currency",
            "is_active",
        ]

    def clean_tiers(self) -> list[dict[str, Any]]:
        tiers = self.cleaned_data.get("tiers") or []
        if not isinstance(tiers, list):
            raise forms.ValidationError("Tiers must be a JSON list.")
        last = -1
        for tier in tiers:
            if not isinstance(tier, dict) or set(tier) != {"min_revenue", "rate"}:
                raise forms.ValidationError(
                    'Each tier is {"min_revenue": <minor units>, "rate": "<percent>"}.'
                )
            minimum = tier["min_revenue"]
            if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 0:
                raise forms.ValidationError("min_revenue must be a non-negative integer.")
            if minimum <= last:
                raise forms.ValidationError("Tiers must be in increasing min_revenue order.")
            last = minimum
            try:
                rate = Decimal(str(tier["rate"]))
            except InvalidOperation:
                raise forms.ValidationError(f"{tier['rate']!r} is not a rate.") from None
            if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(100):
                raise forms.ValidationError("A tier rate is a percent between 0 and 100.")
        return tiers

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        landing_url = cleaned.get("landing_url")
        hosts = cleaned.get("allowed_hosts")
        if landing_url and hosts is not None:
            parts = urlsplit(landing_url)
            host = tracking.host_normalise(parts.hostname or "")
            if parts.scheme not in ("http", "https") or host is None:
                self.add_error("landing_url", "Enter an http(s) URL.")
            elif host not in hosts:
                self.add_error(
                    "landing_url", f"The landing URL's host {host} is not in the allowed hosts."
                )
        return cleaned


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    form = ProgramForm
    list_display = (
        "name",
        "slug",
        "landing_url",
        "commission_type",
        "commission_rate",
        "duration",
        "hold_days",
        "currency",
        "is_active",
    )
    list_filter = ("is_active", "commission_type", "duration", "currency")
    search_fields = ("name", "slug")
    ordering = ("name",)
    prepopulated_fields = {"slug": ("name",)}


# --- affiliates: the approval queue --------------------------------------------------------


@admin.register(Affiliate)
class AffiliateAdmin(admin.ModelAdmin):
    list_display = ("user", "program", "status", "website", "applied_at", "decided_at")
    list_filter = ("status", "program")
    search_fields = ("user__email", "website")
    list_select_related = ("user", "program")
    raw_id_fields = ("user", "decided_by")
    autocomplete_fields = ("program",)
    readonly_fields = ("status", "applied_at", "decided_at", "decided_by")
    actions = ("approve", "reject", "suspend")
    ordering = ("-applied_at",)

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        # Pending first (the queue), then newest applications; backed by (status, -applied_at).
        pending_first = Case(
            When(status=Affiliate.Status.PENDING, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        return [pending_first.asc(), "-applied_at"]

    def _decide(self, request: HttpRequest, queryset: QuerySet[Affiliate], verb: str) -> None:
        service = getattr(applications, f"affiliate_{verb}")
        done = 0
        for affiliate in queryset.order_by("pk"):
            try:
                service(affiliate=affiliate, actor=request_user(request))
            except applications.IllegalTransition as exc:
                self.message_user(request, str(exc), level=messages.WARNING)
                continue
            self.log_change(request, affiliate, f"{verb.capitalize()}d through the admin.")
            done += 1
        if done:
            self.message_user(request, f"{done} affiliate(s) {verb}d.", level=messages.SUCCESS)

    @admin.action(description="Approve selected affiliates (emails them)")
    def approve(self, request: HttpRequest, queryset: QuerySet[Affiliate]) -> None:
        self._decide(request, queryset, "approve")

    @admin.action(description="Reject selected applications (emails them)")
    def reject(self, request: HttpRequest, queryset: QuerySet[Affiliate]) -> None:
        self._decide(request, queryset, "reject")

    @admin.action(description="Suspend selected affiliates (emails them)")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Affiliate]) -> None:
        self._decide(request, queryset, "suspend")


# --- links, clicks, referrals --------------------------------------------------------------


class ReferralLinkAdminForm(forms.ModelForm):
    class Meta:
        model = ReferralLink
        fields = ["affiliate", "code", "campaign", "sub_id", "landing_path", "is_active"]

    def clean_landing_path(self) -> str:
        try:
            return applications.landing_path_validate(self.cleaned_data.get("landing_path") or "")
        except forms.ValidationError as exc:
            messages_ = exc.message_dict.get("landing_path", exc.messages)
            raise forms.ValidationError(messages_) from None


@admin.register(ReferralLink)
class ReferralLinkAdmin(admin.ModelAdmin):
    form = ReferralLinkAdminForm
    list_display = (
        "code",
        "affiliate",
        "campaign",
        "sub_id",
        "landing_path",
        "is_active",
        "click_count",
        "created_at",
    )
    list_filter = ("is_active", "affiliate__program")
    search_fields = ("code", "campaign", "affiliate__user__email")
    list_select_related = ("affiliate__user",)
    raw_id_fields = ("affiliate",)
    ordering = ("-created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReferralLink]:
        return links_with_click_counts(super().get_queryset(request))

    @admin.display(description="clicks", ordering="click_count")
    def click_count(self, obj: Any) -> int:
        return int(obj.click_count)


@admin.register(Click)
class ClickAdmin(ReadOnlyAdmin):
    list_display = ("clicked_at", "link", "ip_hash", "user_agent", "referrer", "click_uid")
    list_filter = ("link__affiliate__program",)
    search_fields = ("=click_uid", "=link__code", "=ip_hash")
    list_select_related = ("link",)
    raw_id_fields = ("link",)
    ordering = ("-clicked_at",)
    date_hierarchy = "clicked_at"
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(Referral)
class ReferralAdmin(ReadOnlyAdmin):
    list_display = (
        "stripe_customer_id",
        "affiliate",
        "link",
        "source",
        "user",
        "referred_at",
        "flags",
    )
    list_filter = ("source", "affiliate__program")
    search_fields = ("=stripe_customer_id", "affiliate__user__email", "user__email")
    list_select_related = ("affiliate__user", "link", "user")
    raw_id_fields = ("affiliate", "link", "user")
    ordering = ("-referred_at",)
    date_hierarchy = "referred_at"
    show_full_result_count = False
    paginator = EstimatedCountPaginator
