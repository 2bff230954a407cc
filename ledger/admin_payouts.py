"""Staff console for payouts: payee profiles, payout batches (approve / execute / export CSV)
and payouts. Batches and payouts are read-only; changes go through the engine's services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from accounts.selectors import request_user
from ledger.models import PayeeProfile, Payout, PayoutBatch
from ledger.payouts import (
    PayoutError,
    payout_batch_approve,
    payout_batch_execute,
    payout_batch_export_csv,
)
from revenue_site.admin import ReadOnlyAdmin, ReadOnlyAdminMixin
from revenue_site.money import format_money
from revenue_site.stripe_errors import StripeUnavailable


@admin.register(PayeeProfile)
class PayeeProfileAdmin(admin.ModelAdmin):
    list_display = ("payee_type", "payee_id", "method", "stripe_account_id", "paypal_email")
    list_filter = ("payee_type", "method")
    search_fields = ("=payee_id", "stripe_account_id", "paypal_email", "bank_iban")
    ordering = ("payee_type", "payee_id")
    list_select_related = ()


class PayoutInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Payout
    fields = (
        "payee_type",
        "payee_id",
        "display_amount",
        "method",
        "status",
        "stripe_transfer_id",
        "failure_message",
        "skip_reason",
        "paid_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="Amount")
    def display_amount(self, obj: Payout) -> str:
        return format_money(obj.amount, obj.currency)


@admin.register(PayoutBatch)
class PayoutBatchAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "payee_type",
        "as_of",
        "status",
        "created_at",
        "created_by",
        "completed_at",
    )
    list_filter = ("payee_type", "status")
    search_fields = ("=id",)
    ordering = ("-as_of", "-pk")
    list_select_related = ("created_by",)
    raw_id_fields = ("created_by",)
    date_hierarchy = "as_of"
    inlines = (PayoutInline,)
    actions = ("approve", "execute", "export_csv")

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ledger.change_payoutbatch")

    @admin.action(description="Approve selected draft batches", permissions=["run"])
    def approve(self, request: HttpRequest, queryset: QuerySet[PayoutBatch]) -> None:
        for batch in queryset.order_by("pk"):
            batch = payout_batch_approve(batch=batch, actor=request_user(request))
            self.log_change(request, batch, f"approved ({batch.status})")
        self.message_user(request, "Batches approved.", messages.SUCCESS)

    @admin.action(description="Execute selected approved batches (pays now)", permissions=["run"])
    def execute(self, request: HttpRequest, queryset: QuerySet[PayoutBatch]) -> None:
        for batch in queryset.order_by("pk"):
            try:
                batch = payout_batch_execute(batch=batch)
            except PayoutError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            except StripeUnavailable as exc:
                # The batch stays EXECUTING with its unpaid payouts PENDING: run it again later.
                self.message_user(request, f"{batch}: {exc.message}", messages.ERROR)
                continue
            self.log_change(request, batch, f"executed ({batch.status})")
            level = messages.SUCCESS if batch.status == batch.Status.COMPLETED else messages.WARNING
            self.message_user(request, f"{batch}: {batch.get_status_display()}", level)

    @admin.action(description="Export PayPal / bank CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[PayoutBatch]) -> HttpResponse:
        body = "".join(payout_batch_export_csv(batch=b) for b in queryset.order_by("pk"))
        response = HttpResponse(body, content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="payouts.csv"'
        return response


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "batch",
        "payee_type",
        "payee_id",
        "display_amount",
        "method",
        "status",
        "paid_at",
    )
    list_filter = ("status", "method", "payee_type")
    search_fields = ("=payee_id", "=stripe_transfer_id")
    ordering = ("-pk",)
    list_select_related = ("batch",)
    raw_id_fields = ("batch",)
    show_full_result_count = False

    @admin.display(description="Amount", ordering="amount")
    def display_amount(self, obj: Payout) -> str:
        return format_money(obj.amount, obj.currency)
