"""Affiliate API routes, mounted at /api/v1/affiliate/."""

from django.urls import path

from affiliates import api

app_name = "affiliate-api"

urlpatterns = [
    path("me", api.MeView.as_view(), name="me"),
    path("links", api.LinkListView.as_view(), name="links"),
    path("links/<int:pk>", api.LinkDetailView.as_view(), name="link-detail"),
    path("commissions", api.CommissionListView.as_view(), name="commissions"),
    path("commissions/<int:pk>", api.CommissionDetailView.as_view(), name="commission-detail"),
    path("payouts", api.PayoutListView.as_view(), name="payouts"),
    path("stats", api.StatsView.as_view(), name="stats"),
    path("payout-settings", api.PayoutSettingsView.as_view(), name="payout-settings"),
]
