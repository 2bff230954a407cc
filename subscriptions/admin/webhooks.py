"""Staff console for the webhook inbox: read-only rows, and one action to reprocess failures."""

from __future__ import annotations

import json
from typing import cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from revenue_site.admin import EstimatedCountPaginator, ReadOnlyAdmin
from subscriptions.models import WebhookEvent
from subscriptions.services.inbox import webhook_event_reprocess
from subscriptions.tasks import webhook_event_process_on_commit


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = (
        "stripe_event_id",
        "type",
        "status",
        "attempts",
        "stripe_created",
        "received_at",
        "processed_at",
    )
    list_filter = ("status", "type", "livemode")
    # Exact matches only: both columns are indexed, a LIKE '%…%' would scan the table.
    search_fields = ("=stripe_event_id", "=object_id")
    ordering = ("-received_at", "-id")
    list_select_related = ()
    raw_id_fields = ()
    date_hierarchy = "received_at"
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    actions = ("reprocess_selected",)
    exclude = ("payload",)
    readonly_fields = (
        "stripe_event_id",
        "type",
        "livemode",
        "stripe_created",
        "object_id",
        "status",
        "attempts",
        "last_error",
        "received_at",
        "processed_at",
        "next_attempt_at",
        "payload_pretty",
    )

    @admin.display(description="Payload")
    def payload_pretty(self, event: WebhookEvent) -> SafeString:
        return format_html(
            '<pre style="white-space: pre-wrap">{}</pre>',
            json.dumps(event.payload, indent=2, sort_keys=True),
        )

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("subscriptions.change_webhookevent")

    @admin.action(description="Reprocess selected", permissions=["reprocess"])
    def reprocess_selected(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        queued = webhook_event_reprocess(
            event_ids=list(queryset.values_list("pk", flat=True)),
            actor_id=cast(int, request.user.pk),  # the admin site only lets staff in
            enqueue=webhook_event_process_on_commit,
        )
        self.message_user(
            request,
            f"{queued} event(s) queued for processing; succeeded or in-progress ones were skipped.",
            messages.SUCCESS if queued else messages.WARNING,
        )
