"""Portal forms: they parse and validate input; the views call services with cleaned data."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import security
from affiliates.models import Commission, Program
from ledger.models import PayeeProfile


class SignupForm(forms.Form):
    name = forms.CharField(max_length=150)
    email = forms.EmailField()
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    program = forms.ModelChoiceField(queryset=Program.objects.none(), empty_label=None)
    website = forms.URLField(required=False, assume_scheme="https")
    promotion_plan = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["program"]
        field.queryset = Program.objects.filter(is_active=True).order_by("name")


class PortalAuthenticationForm(AuthenticationForm):
    """Django's login form that refuses logins while (IP, email) is locked out.

    Failures are counted by accounts' ``user_login_failed`` receiver (shared with the staff
    console and the API), so the same limit applies here.
    """

    error_messages = {**AuthenticationForm.error_messages, "locked_out": security.LOCKOUT_MESSAGE}

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        if username and security.login_is_locked(
            ip=security.client_ip(self.request), username=username
        ):
            raise ValidationError(security.lockout_message(), code="locked_out")
        return super().clean()


class LinkForm(forms.Form):
    campaign = forms.CharField(max_length=100, required=False)
    sub_id = forms.CharField(max_length=100, required=False, label="Sub-id")
    landing_path = forms.CharField(
        max_length=500, required=False, help_text="A path on our site, e.g. /pricing"
    )


class CommissionFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *Commission.Status.choices], required=False
    )
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


class PayoutSettingsForm(forms.Form):
    method = forms.ChoiceField(choices=PayeeProfile.Method.choices)
    stripe_account_id = forms.CharField(max_length=255, required=False, label="Connect account id")
    paypal_email = forms.EmailField(required=False, label="PayPal email")
    bank_account_name = forms.CharField(max_length=200, required=False, label="Account holder")
    bank_iban = forms.CharField(max_length=42, required=False, label="IBAN")
    bank_bic = forms.CharField(max_length=14, required=False, label="BIC")
