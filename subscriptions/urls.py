from django.urls import path

from subscriptions import api

urlpatterns = [
    path("plans/", api.PlanListView.as_view(), name="plan-list"),
    path("subscriptions/", api.SubscriptionListCreateView.as_view(), name="subscription-list"),
    path(
        "subscriptions/<str:subscription_id>/",
        api.SubscriptionDetailView.as_view(),
        name="subscription-detail",
    ),
    path(
        "subscriptions/<str:subscription_id>/change",
        api.SubscriptionChangeView.as_view(),
        name="subscription-change",
    ),
    path(
        "subscriptions/<str:subscription_id>/cancel",
        api.SubscriptionCancelView.as_view(),
        name="subscription-cancel",
    ),
    path(
        "subscriptions/<str:subscription_id>/resume",
        api.SubscriptionResumeView.as_view(),
        name="subscription-resume",
    ),
    path("invoices/", api.InvoiceListView.as_view(), name="invoice-list"),
    path("entitlements/", api.EntitlementsView.as_view(), name="entitlements"),
    path("checkout-sessions/", api.CheckoutSessionView.as_view(), name="checkout-session-create"),
    path(
        "billing-portal-sessions/",
        api.BillingPortalSessionView.as_view(),
        name="billing-portal-session-create",
    ),
]
