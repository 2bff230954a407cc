"""The affiliate portal, mounted at /portal/ (namespace ``portal``)."""

from django.urls import path

from affiliates.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("signup/", views.signup, name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path("password-reset/done/", views.PasswordResetDoneView.as_view(), name="password-reset-done"),
    path(
        "reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path(
        "reset/done/",
        views.PasswordResetCompleteView.as_view(),
        name="password-reset-complete",
    ),
    path("links/", views.links, name="links"),
    path("commissions/", views.commissions, name="commissions"),
    path("commissions.csv", views.commissions_csv, name="commissions-csv"),
    path("commissions/<int:pk>/", views.commission_detail, name="commission-detail"),
    path("payouts/", views.payouts, name="payouts"),
    path("payout-settings/", views.payout_settings, name="payout-settings"),
]
