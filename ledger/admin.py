"""Staff console for the ledger: everything viewable, nothing addable, editable or deletable.

Corrections are reversing postings made by services, never edits (STYLE.md). Entry and
Transaction grow without bound, so their changelists skip the full COUNT(*) and, on PostgreSQL,
estimate the unfiltered count from the planner's statistics.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from ledger import selectors
from ledger.models import Account, Entry, Transaction
from revenue_site.admin import EstimatedCountPaginator, ReadOnlyAdmin, ReadOnlyAdminMixin
from revenue_site.money import format_money


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("code", "name", "type", "payee_type", "payee_id", "created_at")
    list_filter = ("type", "payee_type")
    search_fields = ("code", "name", "=payee_id")
    ordering = ("code",)
    list_select_related = ()
    raw_id_fields = ()


class EntryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Entry
    fields = ("account", "side", "amount", "currency", "display_amount")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("pk",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Entry]:
        return super().get_queryset(request).select_related("account")

    @admin.display(description="Dr/Cr")
    def side(self, entry: Entry) -> str:
        return "Dr" if entry.is_debit else "Cr"

    @admin.display(description="Display")
    def display_amount(self, entry: Entry) -> str:
        return format_money(abs(entry.amount), entry.currency)


class IsReversalFilter(admin.SimpleListFilter):
    title = "reversal"
    parameter_name = "is_reversal"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Reversals"), ("no", "Original postings")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(reversal_of__isnull=False)
        if self.value() == "no":
            return queryset.filter(reversal_of__isnull=True)
        return queryset


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "posted_at", "source", "idempotency_key", "memo", "reversal_of")
    list_filter = (IsReversalFilter,)
    # Exact matches only: they use the indexes; a LIKE '%…%' would scan the table.
    search_fields = ("=idempotency_key", "=source", "=id")
    ordering = ("-posted_at", "-id")
    list_select_related = ("reversal_of",)
    raw_id_fields = ("reversal_of",)
    date_hierarchy = "posted_at"
    inlines = (EntryInline,)
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def get_queryset(self, request: HttpRequest) -> QuerySet[Transaction]:
        return selectors.transaction_list()


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "posted_at",
        "transaction",
        "account",
        "side",
        "amount",
        "currency",
        "display_amount",
    )
    list_filter = ("account__type", "account__payee_type")
    search_fields = ("=account__code", "=currency", "=transaction__idempotency_key")
    ordering = ("-posted_at", "-id")
    list_select_related = ("transaction", "account")
    raw_id_fields = ("transaction", "account")
    date_hierarchy = "posted_at"
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def get_queryset(self, request: HttpRequest) -> QuerySet[Entry]:
        return selectors.entry_list()

    @admin.display(description="Dr/Cr")
    def side(self, entry: Entry) -> str:
        return "Dr" if entry.is_debit else "Cr"

    @admin.display(description="Display")
    def display_amount(self, entry: Entry) -> str:
        return format_money(abs(entry.amount), entry.currency)


from ledger import admin_payouts  # noqa: E402,F401  (payout batches, payouts, payee profiles)
