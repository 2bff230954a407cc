from django.urls import path

from analytics import api_revenue

urlpatterns = [
    path("analytics/revenue", api_revenue.RevenueView.as_view(), name="analytics-revenue"),
]
