from django.urls import path

from marketplace import api, api_listings, api_orders, api_provider

urlpatterns = [
    path("api-keys/", api.ApiKeyListCreateView.as_view(), name="api-key-list"),
    path("api-keys/<int:api_key_id>/revoke", api.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("usage/events", api.UsageEventsView.as_view(), name="usage-events"),
    path("usage/events/<path:event_id>", api.UsageEventDetailView.as_view(), name="usage-event"),
    path("usage/summary", api.UsageSummaryView.as_view(), name="usage-summary"),
    # The services marketplace: the public catalog and the providers' own endpoints.
    path(
        "marketplace/categories/",
        api_listings.CategoryListView.as_view(),
        name="marketplace-categories",
    ),
    path(
        "marketplace/listings/",
        api_listings.CatalogListingListView.as_view(),
        name="marketplace-listings",
    ),
    path(
        "marketplace/listings/<int:listing_id>/",
        api_listings.CatalogListingDetailView.as_view(),
        name="marketplace-listing",
    ),
    path("provider/profile", api_provider.ProviderProfileView.as_view(), name="provider-profile"),
    path("provider/onboarding", api_provider.OnboardingView.as_view(), name="provider-onboarding"),
    path(
        "provider/onboarding/connect",
        api_provider.OnboardingConnectView.as_view(),
        name="provider-onboarding-connect",
    ),
    path(
        "provider/onboarding/refresh",
        api_provider.OnboardingRefreshView.as_view(),
        name="provider-onboarding-refresh",
    ),
    path(
        "provider/onboarding/bank",
        api_provider.OnboardingBankView.as_view(),
        name="provider-onboarding-bank",
    ),
    path(
        "provider/listings/",
        api_provider.ProviderListingListView.as_view(),
        name="provider-listings",
    ),
    path(
        "provider/listings/<int:listing_id>/",
        api_provider.ProviderListingDetailView.as_view(),
        name="provider-listing",
    ),
    path(
        "provider/listings/<int:listing_id>/submit",
        api_provider.ListingSubmitView.as_view(),
        name="provider-listing-submit",
    ),
    path(
        "provider/listings/<int:listing_id>/withdraw",
        api_provider.ListingWithdrawView.as_view(),
        name="provider-listing-withdraw",
    ),
    path(
        "provider/listings/<int:listing_id>/pause",
        api_provider.ListingPauseView.as_view(),
        name="provider-listing-pause",
    ),
    path(
        "provider/listings/<int:listing_id>/resume",
        api_provider.ListingResumeView.as_view(),
        name="provider-listing-resume",
    ),
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
