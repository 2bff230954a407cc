"""The affiliate self-service portal (/portal/): server-rendered pages.

Views parse input and call selectors (always scoped by the request's affiliate, so another
affiliate's id is a 404) or services. Pages other than sign-up, login and password reset need
a logged-in, approved affiliate; a pending, rejected or suspended one sees a status page.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.http import require_http_methods

from accounts.forms import QueuedPasswordResetForm
from accounts.services import user_signup
from affiliates import selectors
from affiliates.models import Affiliate
from affiliates.portal import forms
from affiliates.services import applications
from revenue_site.money import format_money

TEMPLATE = "affiliates/portal/{}.html"

View = Callable[..., HttpResponseBase]


def affiliate_required(view: View) -> View:
    """Login required (portal login page); approved affiliates only, others see their status."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect(f"{reverse('portal:login')}?next={request.path}")
        affiliate = selectors.affiliate_for_user(user=request.user)
        if affiliate is None or not affiliate.is_approved:
            return render(
                request,
                TEMPLATE.format("status"),
                {"affiliate": affiliate},
                status=403 if affiliate is None else 200,
            )
        request.affiliate = affiliate  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapper


def _apply_errors(form: Any, exc: ValidationError) -> None:
    errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
    for name, msgs in errors.items():
        target = name if name in form.fields else None
        for msg in msgs:
            form.add_error(target, msg)


# --- account ---------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = forms.SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                user, _ = user_signup(
                    email=data["email"], password=data["password"], name=data["name"]
                )
                applications.affiliate_apply(
                    user=user,
                    program=data["program"],
                    website=data["website"],
                    promotion_plan=data["promotion_plan"],
                )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("portal:dashboard")
    return render(request, TEMPLATE.format("signup"), {"form": form})


class LoginView(auth_views.LoginView):
    template_name = TEMPLATE.format("login")
    authentication_form = forms.PortalAuthenticationForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        return reverse("portal:dashboard")


class LogoutView(auth_views.LogoutView):
    next_page = "portal:login"


class PasswordResetView(auth_views.PasswordResetView):
    form_class = QueuedPasswordResetForm
    template_name = TEMPLATE.format("password_reset")
    email_template_name = "affiliates/portal/password_reset_email.txt"
    subject_template_name = "affiliates/portal/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password-reset-done")


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = TEMPLATE.format("password_reset_done")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = TEMPLATE.format("password_reset_confirm")
    success_url = reverse_lazy("portal:password-reset-complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = TEMPLATE.format("password_reset_complete")


# --- dashboard -------------------------------------------------------------------------------

_CHART_W, _CHART_H = 540, 120


def _bars(values: list[int]) -> list[dict[str, float]]:
    """Server-side SVG bar geometry (no JS chart library)."""
    top = max(values, default=0) or 1
    width = _CHART_W / max(len(values), 1)
    return [
        {
            "x": round(i * width, 2),
            "w": round(max(width - 1, 1), 2),
            "h": round(v / top * _CHART_H, 2),
            "y": round(_CHART_H - v / top * _CHART_H, 2),
            "v": v,
        }
        for i, v in enumerate(values)
    ]


@affiliate_required
def dashboard(request: HttpRequest) -> HttpResponse:
    affiliate: Affiliate = request.affiliate  # type: ignore[attr-defined]
    stats = selectors.affiliate_stats(affiliate=affiliate)
    earnings = [
        {"currency": cur, **{s: format_money(v, cur) for s, v in by_status.items()}}
        for cur, by_status in stats.earnings.items()
    ]
    series = stats.series
    context = {
        "affiliate": affiliate,
        "stats": stats,
        "earnings": earnings,
        "chart": {
            "width": _CHART_W,
            "height": _CHART_H,
            "clicks": list(zip(series, _bars([p.clicks for p in series]), strict=True)),
            "earnings": list(zip(series, _bars([p.earnings for p in series]), strict=True)),
            "total_clicks": sum(p.clicks for p in series),
            "total_earnings": format_money(sum(p.earnings for p in series), stats.currency),
        },
    }
    return render(request, TEMPLATE.format("dashboard"), context)


# --- links -----------------------------------------------------------------------------------


@affiliate_required
@require_http_methods(["GET", "POST"])
def links(request: HttpRequest) -> HttpResponse:
    affiliate: Affiliate = request.affiliate  # type: ignore[attr-defined]
    form = forms.LinkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            link = applications.referral_link_create(affiliate=affiliate, **form.cleaned_data)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, f"Link {link.code} created.")
            return redirect("portal:links")
    rows = [
        (
            link,
            request.build_absolute_uri(f"/r/{link.code}"),
        )
        for link in selectors.link_list(affiliate=affiliate)
    ]
    return render(request, TEMPLATE.format("links"), {"form": form, "rows": rows})


# --- commissions -----------------------------------------------------------------------------


def _commission_filters(request: HttpRequest) -> tuple[forms.CommissionFilterForm, dict[str, Any]]:
    form = forms.CommissionFilterForm(request.GET or None)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        return form, {
            "status": data["status"] or "",
            "date_from": data["date_from"],
            "date_to": data["date_to"],
        }
    return form, {}


@affiliate_required
def commissions(request: HttpRequest) -> HttpResponse:
    affiliate: Affiliate = request.affiliate  # type: ignore[attr-defined]
    form, filters = _commission_filters(request)
    page = Paginator(selectors.commission_list(affiliate=affiliate, **filters), 25).get_page(
        request.GET.get("page")
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        TEMPLATE.format("commissions"),
        {"form": form, "page": page, "query": query.urlencode()},
    )


@affiliate_required
def commission_detail(request: HttpRequest, pk: int) -> HttpResponse:
    affiliate: Affiliate = request.affiliate  # type: ignore[attr-defined]
    commission = selectors.commission_get(affiliate=affiliate, pk=pk)
    return render(request, TEMPLATE.format("commission_detail"), {"commission": commission})


class _Echo:
    def write(self, value: str) -> str:
        return value


@affiliate_required
def commissions_csv(request: HttpRequest) -> StreamingHttpResponse:
    affiliate: Affiliate = request.affiliate  # type: ignore[attr-defined]
    _, filters = _commission_filters(request)
    writer = csv.writer(_Echo())
    header = [
        "id",
        "invoice",
        "paid_at",
        "status",
        "currency",
        "base_amount",
        "amount",
        "reversed_amount",
        "available_at",
        "payment_intent",
    ]

    def rows() -> Any:
        yield writer.writerow(header)
        for c in selectors.commission_list(affiliate=affiliate, **filters).iterator():
            yield writer.writerow(
                [
                    c.pk,
                    c.stripe_invoice_id,
                    c.paid_at_invoice.isoformat(),
                    c.status,
                    c.currency,
                    c.base_amount,
                    c.amount,
                    c.reversed_amount,
                    c.available_at.isoformat(),
                    c.stripe_payment_intent_id,
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="commissions.csv"'
    return response


# --- payouts ---------------------------------------------------------------------------------


@affiliate_required
def payouts(request: HttpRequest) -> HttpResponse:
    affiliate: Affiliate = request.affiliate  # type: ignore[attr-defined]
    page = Paginator(selectors.payout_list(affiliate=affiliate), 25).get_page(
        request.GET.get("page")
    )
    return render(request, TEMPLATE.format("payouts"), {"page": page})


@affiliate_required
@require_http_methods(["GET", "POST"])
def payout_settings(request: HttpRequest) -> HttpResponse:
    affiliate: Affiliate = request.affiliate  # type: ignore[attr-defined]
    profile = selectors.payee_profile_get(affiliate=affiliate)
    initial = {}
    if profile is not None:
        initial = {name: getattr(profile, name) for name in forms.PayoutSettingsForm.base_fields}
    form = forms.PayoutSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            applications.affiliate_payout_settings_update(
                affiliate=affiliate, **{k: v or "" for k, v in form.cleaned_data.items()}
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, "Payout settings saved.")
            return redirect("portal:payout-settings")
    return render(request, TEMPLATE.format("payout_settings"), {"form": form})
