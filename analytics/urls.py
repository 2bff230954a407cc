from django.urls import path

from analytics import api, api_revenue

urlpatterns = [
    path("analytics/summary", api.SummaryView.as_view(), name="analytics-summary"),
    path("analytics/movements", api.MovementsView.as_view(), name="analytics-movements"),
    path("analytics/cohorts", api.CohortsView.as_view(), name="analytics-cohorts"),
    path("analytics/revenue", api_revenue.RevenueView.as_view(), name="analytics-revenue"),
]
