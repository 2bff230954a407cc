"""Staff console: the customer page and the dunning list. (dj-stripe's mirror admins are made
read-only by the site: ``revenue_site.admin_site``.)

The customer page is our ``BillingCustomer`` (user ↔ Stripe customer): its change view shows
the subscriptions, invoices, payments, ledger lines, dunning cases and referral in a fixed
number of queries (``subscriptions.selectors``), with links to actions that call
services (cancel, refund, resync, extend trial, apply coupon) through a small form each.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import stripe
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import (
    Case,
    IntegerField,
    QuerySet,
    Value,
    When,
)
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from djstripe import models as djm

from revenue_site.admin import EstimatedCountPaginator, ReadOnlyAdmin
from revenue_site.money import format_money
from revenue_site.stripe_errors import stripe_failure
from subscriptions import selectors
from subscriptions.models import (
    BillingCustomer,
    DunningCase,
    InvoicePayment,
)
from subscriptions.services import billing


# --- helpers --------------------------------------------------------------------------------
def _ts(value: Any) -> str:
    if not value:
        return "—"
    return datetime.fromtimestamp(int(value), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _money(amount: Any, currency: Any) -> str:
    if amount is None or not currency:
        return "—"
    return format_money(int(amount), str(currency))


def _table(headers: list[str], rows: list[list[Any]]) -> SafeString:
    if not rows:
        return format_html("<p>{}</p>", "None.")
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


# --- filters --------------------------------------------------------------------------------
class SubscriptionStatusFilter(admin.SimpleListFilter):
    title = "subscription status"
    parameter_name = "subscription_status"
    STATUSES = ("trialing", "active", "past_due", "unpaid", "incomplete", "canceled")

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(s, s.replace("_", " ")) for s in self.STATUSES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(
                stripe_customer_id__in=selectors.stripe_customer_ids_with_status(
                    status=str(self.value())
                )
            )
        return queryset


class PlanFilter(admin.SimpleListFilter):
    title = "plan"
    parameter_name = "plan"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(p.pk), p.name) for p in selectors.plan_list_pushed()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        customers = selectors.stripe_customer_ids_on_plan(plan_id=str(self.value()))
        return queryset.filter(stripe_customer_id__in=customers)


class PastDueFilter(admin.SimpleListFilter):
    title = "past due"
    parameter_name = "past_due"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Past due or in dunning")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(past_due=True)
        return queryset


# --- action forms ---------------------------------------------------------------------------
class CancelForm(forms.Form):
    at_period_end = forms.BooleanField(
        required=False, initial=True, help_text="Unticked: cancel now."
    )


class RefundForm(forms.Form):
    amount = forms.IntegerField(
        required=False, min_value=1, help_text="Minor units (cents); empty refunds the rest."
    )
    reason = forms.ChoiceField(
        choices=[(r, r) for r in ("requested_by_customer", "duplicate", "fraudulent")]
    )
    token = forms.CharField(widget=forms.HiddenInput)


class TrialForm(forms.Form):
    trial_end = forms.SplitDateTimeField(widget=forms.SplitDateTimeWidget)


class CouponForm(forms.Form):
    coupon_id = forms.CharField(max_length=255, label="Coupon id")


class ResyncForm(forms.Form):
    pass


ActionSpec = tuple[str, type[forms.Form], Callable[[str, dict[str, Any]], str]]


def _cancel(sub_id: str, data: dict[str, Any]) -> str:
    billing.subscription_cancel(subscription_id=sub_id, at_period_end=data["at_period_end"])
    return "Canceled at period end." if data["at_period_end"] else "Canceled now."


def _refund(charge_id: str, data: dict[str, Any]) -> str:
    refund_id = billing.charge_refund(
        charge_id=charge_id,
        amount=data.get("amount"),
        reason=data["reason"],
        request_key=data["token"],
    )
    return f"Refund {refund_id} created; the ledger follows from Stripe's charge.refunded event."


def _resync(sub_id: str, data: dict[str, Any]) -> str:
    billing.subscription_resync(subscription_id=sub_id)
    return "Resynced from Stripe."


def _extend_trial(sub_id: str, data: dict[str, Any]) -> str:
    billing.subscription_extend_trial(subscription_id=sub_id, trial_end=data["trial_end"])
    return f"Trial extended to {data['trial_end']:%Y-%m-%d %H:%M}."


def _apply_coupon(sub_id: str, data: dict[str, Any]) -> str:
    billing.subscription_apply_coupon(subscription_id=sub_id, coupon_id=data["coupon_id"])
    return f"Coupon {data['coupon_id']} applied."


ACTIONS: dict[str, ActionSpec] = {
    "cancel": ("Cancel subscription", CancelForm, _cancel),
    "refund": ("Refund payment", RefundForm, _refund),
    "resync": ("Resync from Stripe", ResyncForm, _resync),
    "extend-trial": ("Extend trial", TrialForm, _extend_trial),
    "apply-coupon": ("Apply coupon", CouponForm, _apply_coupon),
}
# Every action calls Stripe: its refusals and outages are shown to staff, never a 500.
SERVICE_ERRORS = (billing.BillingError, stripe.StripeError)


def _error_message(exc: Exception) -> str:
    return stripe_failure(exc).message if isinstance(exc, stripe.StripeError) else str(exc)


# --- the customer page ----------------------------------------------------------------------
@admin.register(BillingCustomer)
class BillingCustomerAdmin(admin.ModelAdmin):
    list_display = ("user", "stripe_customer_id", "mrr_display", "past_due", "created_at")
    list_filter = (SubscriptionStatusFilter, PlanFilter, PastDueFilter, "livemode")
    search_fields = ("user__email", "=stripe_customer_id")
    ordering = ("-created_at", "-pk")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = (
        "user",
        "stripe_customer_id",
        "livemode",
        "referral",
        "subscriptions_section",
        "invoices_section",
        "payments_section",
        "ledger_section",
        "dunning_section",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created by the subscribe service, once per user

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[BillingCustomer]:
        return selectors.customer_list_admin()

    @admin.display(description="MRR (minor units)", ordering="mrr_total")
    def mrr_display(self, obj: Any) -> int:
        return obj.mrr_total or 0

    @admin.display(boolean=True, ordering="past_due")
    def past_due(self, obj: Any) -> bool:
        return bool(obj.past_due)

    # The sections read one overview per request (one query per section).
    def _overview(self, obj: BillingCustomer) -> selectors.CustomerOverview:
        cached = getattr(obj, "_overview", None)
        if cached is None:
            cached = selectors.customer_overview(customer=obj)
            obj._overview = cached  # type: ignore[attr-defined]
        return cached

    def _action_link(self, obj: BillingCustomer, action: str, object_id: str, label: str) -> str:
        url = reverse(
            "admin:subscriptions_billingcustomer_action", args=[obj.pk, action, object_id]
        )
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="Referral code")
    def referral(self, obj: BillingCustomer) -> str:
        return self._overview(obj).referral_code or "—"

    @admin.display(description="Subscriptions")
    def subscriptions_section(self, obj: BillingCustomer) -> SafeString:
        overview = self._overview(obj)
        rows = []
        for sub in overview.subscriptions:
            data = sub.stripe_data
            items = (data.get("items") or {}).get("data") or []
            prices = ", ".join(
                f"{(i.get('price') or {}).get('nickname') or (i.get('price') or {}).get('id')}"
                f" ({(i.get('price') or {}).get('product')})"
                for i in items
            )
            quantity = sum(int(i.get("quantity") or 0) for i in items)
            state = overview.states.get(sub.id)
            links = format_html_join(
                " · ",
                "{}",
                (
                    (self._action_link(obj, action, sub.id, label),)
                    for action, label in (
                        ("cancel", "cancel"),
                        ("resync", "resync"),
                        ("extend-trial", "extend trial"),
                        ("apply-coupon", "apply coupon"),
                    )
                ),
            )
            rows.append(
                [
                    sub.id,
                    data.get("status"),
                    prices,
                    quantity,
                    # The period lives on each item at our API version.
                    _ts((items[0] if items else {}).get("current_period_end")),
                    "yes" if data.get("cancel_at_period_end") else "",
                    _money(state.mrr, state.currency) if state else "—",
                    links,
                ]
            )
        return _table(
            ["id", "status", "plan / price", "quantity", "period end", "cancels", "MRR", ""],
            rows,
        )

    @admin.display(description="Invoices")
    def invoices_section(self, obj: BillingCustomer) -> SafeString:
        rows = [
            [
                inv.id,
                inv.stripe_data.get("status"),
                _money(inv.stripe_data.get("amount_due"), inv.stripe_data.get("currency")),
                _money(inv.stripe_data.get("amount_paid"), inv.stripe_data.get("currency")),
                _ts(inv.stripe_data.get("created")),
            ]
            for inv in self._overview(obj).invoices
        ]
        return _table(["id", "status", "due", "paid", "created"], rows)

    @admin.display(description="Payments")
    def payments_section(self, obj: BillingCustomer) -> SafeString:
        rows = []
        overview = self._overview(obj)
        for charge in overview.charges:
            data = charge.stripe_data
            refundable = overview.refundable.get(charge.id, 0) > 0
            rows.append(
                [
                    charge.id,
                    data.get("status"),
                    _money(data.get("amount"), data.get("currency")),
                    _money(data.get("amount_refunded"), data.get("currency")),
                    overview.charge_invoices.get(charge.id) or "—",
                    _ts(data.get("created")),
                    self._action_link(obj, "refund", charge.id, "refund") if refundable else "",
                ]
            )
        return _table(["id", "status", "amount", "refunded", "invoice", "created", ""], rows)

    @admin.display(description="Ledger lines")
    def ledger_section(self, obj: BillingCustomer) -> SafeString:
        rows = [
            [
                entry.posted_at.strftime("%Y-%m-%d %H:%M"),
                f"{entry.transaction.source}:{entry.transaction.idempotency_key}",
                entry.account.code,
                _money(entry.amount, entry.currency) if entry.amount > 0 else "",
                _money(-entry.amount, entry.currency) if entry.amount < 0 else "",
            ]
            for entry in self._overview(obj).ledger_entries
        ]
        return _table(["posted", "transaction", "account", "debit", "credit"], rows)

    @admin.display(description="Dunning cases")
    def dunning_section(self, obj: BillingCustomer) -> SafeString:
        rows = [
            [
                case.stripe_invoice_id,
                case.get_status_display(),
                _money(case.amount_due, case.currency),
                case.attempt_count,
                " / ".join(c for c in (case.last_failure_code, case.last_decline_code) if c) or "—",
                case.opened_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for case in self._overview(obj).dunning_cases
        ]
        return _table(["invoice", "status", "due", "attempts", "failure", "opened"], rows)

    # --- actions ------------------------------------------------------------------------
    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Every field is read-only: changes happen through the actions, so no Save buttons.
        extra_context = {**(extra_context or {}), "show_save": False}
        extra_context["show_save_and_continue"] = False
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[URLPattern]:
        urls = [
            path(
                "<int:pk>/action/<str:action>/<str:object_id>/",
                self.admin_site.admin_view(self.action_view),
                name="subscriptions_billingcustomer_action",
            )
        ]
        return urls + super().get_urls()

    def _owns(self, customer: BillingCustomer, action: str, object_id: str) -> bool:
        model = djm.Charge if action == "refund" else djm.Subscription
        return model.objects.filter(id=object_id, customer__id=customer.stripe_customer_id).exists()

    def action_view(
        self, request: HttpRequest, pk: int, action: str, object_id: str
    ) -> HttpResponse:
        customer = get_object_or_404(BillingCustomer, pk=pk)
        if action not in ACTIONS or not customer.stripe_customer_id:
            raise PermissionDenied
        if not self.has_change_permission(request, customer):
            raise PermissionDenied
        if not self._owns(customer, action, object_id):
            raise PermissionDenied
        title, form_class, run = ACTIONS[action]
        back_url = reverse("admin:subscriptions_billingcustomer_change", args=[customer.pk])
        if request.method == "POST":
            form = form_class(request.POST)
            if form.is_valid():
                try:
                    message = run(object_id, form.cleaned_data)
                except SERVICE_ERRORS as exc:
                    self.message_user(request, _error_message(exc), messages.ERROR)
                else:
                    self.log_change(request, customer, f"{title} {object_id}: {message}")
                    self.message_user(request, message, messages.SUCCESS)
                    return HttpResponseRedirect(back_url)
        else:
            form = form_class(initial={"token": secrets.token_urlsafe(16)})
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "description": f"{title}: {object_id} of {customer}",
            "form": form,
            "back_url": back_url,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/subscriptions/billingcustomer/action.html", context)


# --- dunning list ---------------------------------------------------------------------------
@admin.register(DunningCase)
class DunningCaseAdmin(ReadOnlyAdmin):
    list_display = (
        "stripe_invoice_id",
        "status",
        "stripe_customer_id",
        "stripe_subscription_id",
        "amount_due",
        "currency",
        "attempt_count",
        "next_payment_attempt",
        "last_failure_code",
        "last_decline_code",
        "opened_at",
    )
    list_filter = ("status", "currency")
    search_fields = ("=stripe_invoice_id", "=stripe_customer_id", "=stripe_subscription_id")
    ordering = ("-opened_at",)  # open cases first: see get_ordering
    list_select_related = ()
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        open_first = Case(
            When(status=DunningCase.Status.OPEN, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        return [open_first.asc(), "-opened_at", "-pk"]


# --- invoice payments (which invoice a payment intent paid) ---------------------------------
@admin.register(InvoicePayment)
class InvoicePaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "stripe_invoice_payment_id",
        "stripe_invoice_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "status",
        "amount",
        "currency",
        "created",
    )
    list_filter = ("status", "currency")
    search_fields = (
        "=stripe_invoice_payment_id",
        "=stripe_invoice_id",
        "=stripe_payment_intent_id",
        "=stripe_charge_id",
    )
    ordering = ("-created", "-pk")
    list_select_related = ()
    show_full_result_count = False
    paginator = EstimatedCountPaginator
