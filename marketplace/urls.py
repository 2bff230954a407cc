from django.urls import path

from marketplace import api

urlpatterns = [
    path("api-keys/", api.ApiKeyListCreateView.as_view(), name="api-key-list"),
    path("api-keys/<int:api_key_id>/revoke", api.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("usage/events", api.UsageEventsView.as_view(), name="usage-events"),
    path("usage/events/<path:event_id>", api.UsageEventDetailView.as_view(), name="usage-event"),
    path("usage/summary", api.UsageSummaryView.as_view(), name="usage-summary"),
]
