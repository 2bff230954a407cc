"""Account forms: email-login user creation/change, the throttled admin login, and a password
reset that sends through the mail outbox."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import BaseUserCreationForm, PasswordResetForm, UserChangeForm
from django.core.exceptions import ValidationError
from django.template import loader

from accounts import security
from accounts.models import User
from accounts.services import PASSWORD_RESET_PURPOSE, email_queue

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


class QueuedPasswordResetForm(PasswordResetForm):
    """Django's password reset, its mail queued in the outbox instead of sent in the request.

    A mail server that is down then neither fails the page nor tells whether the address
    has an account; the link is delivered when the server answers again.
    """

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        subject = loader.render_to_string(subject_template_name, context)
        body = loader.render_to_string(email_template_name, context)
        email_queue(
            to=[to_email], subject=subject, body=body, purpose=PASSWORD_RESET_PURPOSE,
            from_email=from_email or "",
        )  # fmt: skip
