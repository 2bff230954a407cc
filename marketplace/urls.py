from django.urls import path

from marketplace import api, api_orders

urlpatterns = [
    path("api-keys/", api.ApiKeyListCreateView.as_view(), name="api-key-list"),
    path("api-keys/<int:api_key_id>/revoke", api.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("usage/events", api.UsageEventsView.as_view(), name="usage-events"),
    path("usage/events/<path:event_id>", api.UsageEventDetailView.as_view(), name="usage-event"),
    path("usage/summary", api.UsageSummaryView.as_view(), name="usage-summary"),
    # Services marketplace orders (marketplace/api_orders.py).
    path("marketplace/orders/", api_orders.OrderListCreateView.as_view(), name="order-list"),
    path(
        "marketplace/orders/<int:order_id>/",
        api_orders.OrderDetailView.as_view(),
        name="order-detail",
    ),
    path(
        "marketplace/orders/<int:order_id>/messages/",
        api_orders.OrderMessagesView.as_view(),
        name="order-messages",
    ),
    path(
        "marketplace/orders/<int:order_id>/<slug:transition>",
        api_orders.OrderTransitionView.as_view(),
        name="order-transition",
    ),
    path("provider/earnings/", api_orders.ProviderEarningsView.as_view(), name="provider-earnings"),
    path("provider/payouts/", api_orders.ProviderPayoutsView.as_view(), name="provider-payouts"),
]
