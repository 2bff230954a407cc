"""Staff console: the subscription states (the latest Stripe state we applied per subscription,
with its MRR). Read-only: webhooks write them (``subscriptions.services.subscription_state``).

Made for a million rows: no table count (EstimatedCountPaginator, no full count), newest rows
first by primary key (the index; ``as_of`` has none), filters whose choices are fixed or read
from a small table (Django's default filter on a text column lists its values with a
``SELECT DISTINCT`` over the whole table), and search by Stripe id through their indexes
(``__exact``, never ``LIKE '%…%'`` nor ``UPPER(…)``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from analytics.models import MRRSnapshot
from revenue_site.admin import EstimatedCountPaginator, ReadOnlyAdmin
from revenue_site.money import format_money
from subscriptions.models import SubscriptionState

# Stripe's subscription statuses.
STATUSES = (
    "active",
    "past_due",
    "trialing",
    "unpaid",
    "paused",
    "incomplete",
    "incomplete_expired",
    "canceled",
)


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(status, status.replace("_", " ")) for status in STATUSES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(status=self.value()) if self.value() else queryset


class CurrencyFilter(admin.SimpleListFilter):
    """The currencies the daily MRR snapshots know (a small table), plus the one picked."""

    title = "currency"
    parameter_name = "currency__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        known = set(MRRSnapshot.objects.order_by().values_list("currency", flat=True).distinct())
        if self.value():
            known.add(str(self.value()))
        return [(currency, currency.upper()) for currency in sorted(known)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(currency=self.value()) if self.value() else queryset


@admin.register(SubscriptionState)
class SubscriptionStateAdmin(ReadOnlyAdmin):
    list_display = (
        "stripe_subscription_id",
        "stripe_customer_id",
        "status",
        "mrr_display",
        "currency",
        "as_of",
        "updated_at",
    )
    list_filter = (StatusFilter, CurrencyFilter)
    # Case-sensitive equality (Stripe ids are): the indexes. "=field" would be UPPER() = UPPER().
    search_fields = ("stripe_subscription_id__exact", "stripe_customer_id__exact")
    ordering = ("-pk",)
    list_select_related = ()
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    @admin.display(description="MRR", ordering="mrr")
    def mrr_display(self, obj: SubscriptionState) -> str:
        return format_money(obj.mrr, obj.currency) if obj.currency else str(obj.mrr)
