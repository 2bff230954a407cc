"""Staff console: commissions and the flagged-commission review queue.

Money fields and statuses are read-only; approve / reject on review are actions calling
``commission_review`` and leave a log entry. The "Review queue" filter shows HELD commissions
with fraud reasons that nobody reviewed yet.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from accounts.selectors import request_user
from affiliates.models import Commission
from affiliates.services.commissions import CommissionReviewError, commission_review
from revenue_site.admin import ReadOnlyAdmin
from revenue_site.money import format_money


class FlaggedFilter(admin.SimpleListFilter):
    title = "fraud flags"
    parameter_name = "flagged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("review", "Review queue (flagged, held, not reviewed)"),
            ("yes", "Flagged"),
            ("no", "Not flagged"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        unflagged = Q(flags=[])
        if self.value() == "review":
            return queryset.exclude(unflagged).filter(
                status=Commission.Status.HELD, reviewed_at__isnull=True
            )
        if self.value() == "yes":
            return queryset.exclude(unflagged)
        if self.value() == "no":
            return queryset.filter(unflagged)
        return queryset


@admin.register(Commission)
class CommissionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "affiliate",
        "program",
        "stripe_invoice_id",
        "stripe_payment_intent_id",
        "display_base",
        "display_amount",
        "status",
        "reasons",
        "paid_at_invoice",
        "available_at",
        "reviewed_by",
    )
    list_filter = ("status", FlaggedFilter, "affiliate__program", "currency")
    search_fields = (
        "=stripe_invoice_id",
        "=stripe_payment_intent_id",
        "=referral__stripe_customer_id",
        "affiliate__user__email",
    )
    ordering = ("-paid_at_invoice", "-pk")
    list_select_related = ("affiliate__user", "affiliate__program", "reviewed_by")
    raw_id_fields = ("affiliate", "referral", "reviewed_by", "payout")
    date_hierarchy = "paid_at_invoice"
    show_full_result_count = False
    actions = ("approve_on_review", "reject_on_review")

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("affiliates.change_commission")

    @admin.display(description="Program", ordering="affiliate__program__name")
    def program(self, obj: Commission) -> str:
        return obj.affiliate.program.name

    @admin.display(description="Base", ordering="base_amount")
    def display_base(self, obj: Commission) -> str:
        return format_money(obj.base_amount, obj.currency)

    @admin.display(description="Commission", ordering="amount")
    def display_amount(self, obj: Commission) -> str:
        text = format_money(obj.amount, obj.currency)
        if obj.reversed_amount:
            text += f" (reversed {format_money(obj.reversed_amount, obj.currency)})"
        return text

    @admin.display(description="Fraud reasons")
    def reasons(self, obj: Commission) -> str:
        return ", ".join(obj.flags or []) or "—"

    def _review(self, request: HttpRequest, queryset: QuerySet[Commission], approve: bool) -> None:
        verb = "approved on review" if approve else "rejected on review"
        done = 0
        for commission in queryset.order_by("pk"):
            try:
                commission_review(
                    commission=commission, actor=request_user(request), approve=approve, note=verb
                )
            except CommissionReviewError as exc:
                self.message_user(request, str(exc), messages.WARNING)
                continue
            self.log_change(request, commission, verb)
            done += 1
        if done:
            self.message_user(request, f"{done} commission(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Approve on review (clears the fraud hold)", permissions=["review"])
    def approve_on_review(self, request: HttpRequest, queryset: QuerySet[Commission]) -> None:
        self._review(request, queryset, approve=True)

    @admin.action(description="Reject on review (reverses the commission)", permissions=["review"])
    def reject_on_review(self, request: HttpRequest, queryset: QuerySet[Commission]) -> None:
        self._review(request, queryset, approve=False)
