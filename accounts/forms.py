"""Staff console forms: email-login user creation/change and the throttled admin login."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import BaseUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError

from accounts import security
from accounts.models import User

logger = logging.getLogger("accounts.security")


class UserCreationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")

    def clean_email(self) -> str:
        # Stored lower-case, as the manager does; the model's case-insensitive unique
        # constraint is then checked by the form's constraint validation.
        return User.objects.normalize_email(self.cleaned_data["email"]).lower()


class UserAdminChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"
        field_classes: dict[str, Any] = {"email": forms.EmailField}


class StaffAuthenticationForm(AdminAuthenticationForm):
    """Refuses (even correct) logins while the (IP, username) pair is locked out.

    Failures themselves are counted and logged by the ``user_login_failed`` receiver, so API
    and console failures share one counter.
    """

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked_out": security.LOCKOUT_MESSAGE,
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        if username:
            ip = security.client_ip(self.request)
            if security.login_is_locked(ip=ip, username=username):
                logger.warning(
                    "login refused for %s from %s: locked out",
                    username,
                    ip,
                    extra={"ip": ip, "username": username},
                )
                raise ValidationError(security.lockout_message(), code="locked_out")
        return super().clean()
