from django.urls import path

from content import api, api_earnings, api_licensing, api_purchases

urlpatterns = [
    path("content/", api.CatalogListView.as_view(), name="content-catalog"),
    path("content/<int:item_id>/", api.CatalogDetailView.as_view(), name="content-catalog-item"),
    path(
        "content/<int:item_id>/licenses/",
        api_purchases.LicensePurchaseView.as_view(),
        name="content-license-purchase",
    ),
    path(
        "content/licenses/",
        api_purchases.BuyerLicenseListView.as_view(),
        name="content-licenses-mine",
    ),
    path("content/usage", api_licensing.LicenseUsageView.as_view(), name="content-usage"),
    path(
        "creator/licenses/", api_licensing.CreatorLicenseListView.as_view(), name="creator-licenses"
    ),
    path(
        "creator/licenses/<int:license_id>/",
        api_licensing.CreatorLicenseDetailView.as_view(),
        name="creator-license",
    ),
    path("creator/profile", api.CreatorProfileView.as_view(), name="creator-profile"),
    path(
        "creator/payout-settings",
        api_earnings.CreatorPayoutSettingsView.as_view(),
        name="creator-payout-settings",
    ),
    path("creator/balance", api_earnings.CreatorBalanceView.as_view(), name="creator-balance"),
    path("creator/earnings/", api_earnings.CreatorEarningsView.as_view(), name="creator-earnings"),
    path("creator/usage/", api_earnings.CreatorUsageView.as_view(), name="creator-usage"),
    path("creator/payouts/", api_earnings.CreatorPayoutListView.as_view(), name="creator-payouts"),
    path("creator/content/", api.CreatorItemListView.as_view(), name="creator-content"),
    path(
        "creator/content/<int:item_id>/",
        api.CreatorItemDetailView.as_view(),
        name="creator-content-item",
    ),
    path(
        "creator/content/<int:item_id>/shares",
        api.CreatorItemSharesView.as_view(),
        name="creator-content-shares",
    ),
    path(
        "creator/content/<int:item_id>/license-types/",
        api.CreatorLicenseTypeListView.as_view(),
        name="creator-license-types",
    ),
    path(
        "creator/content/<int:item_id>/license-types/<int:license_type_id>/",
        api.CreatorLicenseTypeDetailView.as_view(),
        name="creator-license-type",
    ),
]
