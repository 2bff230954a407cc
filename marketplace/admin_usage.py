"""Staff console: the stored usage events (read-only; written only by ingestion through
``marketplace.usage_store``), for looking up what a customer sent.

Made for tens of millions of rows: no table count (EstimatedCountPaginator on the partitioned
table's row estimate, no full count), newest events first by id (the primary key's first column
in every month partition), a month filter that reads one partition on PostgreSQL (instead of a
date hierarchy, whose year list is a DISTINCT over the whole table), and search by the
customer's exact email: the email is resolved to the customer first, and that customer's events
are listed by event id (newest id first would make PostgreSQL walk the whole table backwards
looking for them; by event id they are read from the (customer, event id) index, a page at a
time).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import SEARCH_VAR
from django.db.models import QuerySet
from django.http import HttpRequest

from marketplace import selectors, usage_store
from marketplace.models import UsageEvent, month_bounds
from revenue_site.admin import EstimatedCountPaginator, ReadOnlyAdmin


class EventMonthFilter(admin.SimpleListFilter):
    """Events whose timestamp falls in a calendar month (UTC)."""

    title = "month (event time, UTC)"
    parameter_name = "month"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(f"{m:%Y-%m}", f"{m:%B %Y}") for m in usage_store.event_months()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        known = {f"{m:%Y-%m}": m for m in usage_store.event_months()}
        if value not in known:
            return queryset.none()
        start, end = month_bounds(known[value])
        return queryset.filter(timestamp__gte=start, timestamp__lt=end)


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "customer", "meter", "quantity", "timestamp", "received_at")
    list_filter = (EventMonthFilter, "meter")
    search_fields = ("customer__email",)  # see get_search_results
    search_help_text = "A customer's email (exact, case-insensitive)."
    list_select_related = ("customer", "meter")
    ordering = ("-pk",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = readonly_fields = (
        "event_id", "customer", "meter", "quantity", "timestamp", "properties", "received_at",
    )  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[UsageEvent]:
        return usage_store.events_for_admin()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if not search_term.strip():
            return queryset, False
        customer = selectors.usage_explorer_customer_get(email=search_term)
        if customer is None:
            return queryset.none(), False
        return queryset.filter(customer_id=customer.pk), False

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        if request.GET.get(SEARCH_VAR, "").strip():
            return ["-event_id", "-pk"]  # one customer's events: its index's order
        return ["-pk"]
