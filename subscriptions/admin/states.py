"""Staff console: the subscription states (the latest Stripe state we applied per subscription,
with its MRR). Read-only: webhooks write them (``subscriptions.services.subscription_state``).

Made for a million rows: no table count (EstimatedCountPaginator, no full count), newest rows
first by primary key (the index; ``as_of`` has none), filters on small value sets, and search by
Stripe id through their indexes (``__exact``, never ``LIKE '%…%'`` nor ``UPPER(…)``).
"""

from __future__ import annotations

from django.contrib import admin

from revenue_site.admin import EstimatedCountPaginator, ReadOnlyAdmin
from revenue_site.money import format_money
from subscriptions.models import SubscriptionState


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
    list_filter = ("status", "currency")
    # Case-sensitive equality (Stripe ids are): the indexes. "=field" would be UPPER() = UPPER().
    search_fields = ("stripe_subscription_id__exact", "stripe_customer_id__exact")
    ordering = ("-pk",)
    list_select_related = ()
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    @admin.display(description="MRR", ordering="mrr")
    def mrr_display(self, obj: SubscriptionState) -> str:
        return format_money(obj.mrr, obj.currency) if obj.currency else str(obj.mrr)
