"""Affiliate URLs mounted at the site root: ``/r/<code>``."""

from django.urls import path

from affiliates.views import referral_redirect

app_name = "affiliates"

urlpatterns = [
    path("r/<str:code>", referral_redirect, name="referral-redirect"),
]
