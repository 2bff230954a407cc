from django.urls import path

from accounts import api

urlpatterns = [
    path("accounts/signup", api.SignupView.as_view(), name="accounts-signup"),
    path("accounts/me", api.MeView.as_view(), name="accounts-me"),
    path("auth/token", api.TokenObtainView.as_view(), name="auth-token"),
]
