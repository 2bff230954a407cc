"""Staff console for marketplace orders: the orders with their state history and messages
(read-only), the transitions staff may take (release an accepted order, resolve a dispute by
a release or a full or partial refund, refund, cancel) and the providers' earnings
statements (CSV). Every action calls ``marketplace.orders`` and leaves a log entry; the
order's own rows are never edited here.
"""

from __future__ import annotations

import csv
import io
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accounts.models import User
from marketplace import orders
from marketplace.models import Order, OrderEvent, OrderMessage
from revenue_site.admin import EstimatedCountPaginator
from revenue_site.money import format_money, from_minor
from revenue_site.stripe_errors import BillingError


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "at", "transition", "from_state", "to_state", "actor", "actor_user", "amount", "note",
    )  # fmt: skip
    ordering = ("at", "pk")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderEvent]:
        return super().get_queryset(request).select_related("actor_user")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrderMessageInline(admin.TabularInline):
    model = OrderMessage
    extra = 0
    can_delete = False
    fields = readonly_fields = ("created_at", "author", "body")
    ordering = ("created_at", "pk")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderMessage]:
        return super().get_queryset(request).select_related("author")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RefundForm(forms.Form):
    amount = forms.IntegerField(
        min_value=1,
        required=False,
        help_text="Minor units; blank: everything not refunded yet (a full refund). A partial "
        "refund of a disputed order releases the rest to the provider.",
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "id", "state", "buyer", "provider", "listing", "price_display", "refunded_display",
        "created_at", "delivered_at", "released_at",
    )  # fmt: skip
    list_filter = ("state", "currency", "created_at")
    search_fields = (
        "=id", "buyer__email", "provider__display_name", "stripe_payment_intent_id",
        "stripe_charge_id", "stripe_transfer_id",
    )  # fmt: skip
    ordering = ("-created_at", "-pk")
    list_select_related = ("buyer", "provider", "listing")
    raw_id_fields = ("buyer", "provider", "listing", "package")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    date_hierarchy = "created_at"
    inlines = (OrderEventInline, OrderMessageInline)
    actions = (
        "release_selected", "resolve_release_selected", "refund_selected", "cancel_selected",
        "earnings_statement_csv",
    )  # fmt: skip
    fields = readonly_fields = (
        "state", "staff_transitions", "buyer", "provider", "listing", "package", "price",
        "currency", "commission_percent", "requirements", "quote_note", "revisions_allowed",
        "revisions_used", "refunded_amount", "disputed_amount", "transferred_amount",
        "stripe_payment_intent_id", "stripe_charge_id", "stripe_transfer_id", "stripe_dispute_id",
        "stripe_dispute_status",
        "created_at", "quoted_at", "paid_at", "delivered_at", "accepted_at", "released_at",
        "closed_at",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("marketplace.change_order")

    @admin.display(description="price", ordering="price")
    def price_display(self, obj: Order) -> str:
        return format_money(obj.price, obj.currency, with_code=True)

    @admin.display(description="refunded", ordering="refunded_amount")
    def refunded_display(self, obj: Order) -> str:
        return format_money(obj.refunded_amount, obj.currency) if obj.refunded_amount else "—"

    @admin.display(description="staff may")
    def staff_transitions(self, obj: Order) -> str:
        names = orders.transitions_available(order=obj, actor=orders.Actor.STAFF)
        if not names:
            return "—"
        link = ""
        if {"refund", "partial_refund"} & set(names):
            url = reverse("admin:marketplace_order_refund", args=[obj.pk])
            link = format_html(' (<a href="{}">refund…</a>)', url)
        return format_html("{}{}", ", ".join(names), link)

    # --- actions -----------------------------------------------------------------------------

    def _each(self, request: HttpRequest, queryset: QuerySet[Order], label: str, take: Any) -> None:
        done = 0
        for order in queryset.order_by("pk"):
            try:
                changed = take(order)
            except orders.OrderTransitionError as exc:
                self.message_user(request, f"Order {order.pk}: {exc.message}", messages.ERROR)
                continue
            except (BillingError, ValidationError) as exc:
                text = exc.message if isinstance(exc, BillingError) else "; ".join(exc.messages)
                self.message_user(request, f"Order {order.pk}: {text}", messages.ERROR)
                continue
            done += 1
            self.log_change(request, changed, f"{label}: now {changed.state}.")
        if done:
            self.message_user(request, f"{done} order(s): {label} done.", messages.SUCCESS)

    @admin.action(description="Release the funds of accepted orders", permissions=["resolve"])
    def release_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        user = _user(request)
        self._each(request, queryset, "release", lambda o: orders.order_release(order=o, user=user))

    @admin.action(
        description="Resolve disputes for the provider (release)", permissions=["resolve"]
    )
    def resolve_release_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        user = _user(request)
        self._each(
            request,
            queryset,
            "resolve by release",
            lambda o: orders.order_resolve_release(order=o, user=user),
        )

    @admin.action(description="Refund the buyers in full", permissions=["resolve"])
    def refund_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        user = _user(request)
        self._each(
            request, queryset, "full refund", lambda o: orders.order_refund(order=o, user=user)
        )

    @admin.action(description="Cancel (before payment)", permissions=["resolve"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        user = _user(request)
        self._each(
            request,
            queryset,
            "cancel",
            lambda o: orders.order_cancel(order=o, user=user, staff=True),
        )

    @admin.action(description="Earnings statement of the selected orders' providers (CSV)")
    def earnings_statement_csv(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> HttpResponse:
        provider_ids = sorted(set(queryset.values_list("provider_id", flat=True)))
        return _statement_response(provider_ids)

    # --- the refund form and the statement URL ----------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:order_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="marketplace_order_refund",
            ),
            path(
                "earnings-statement/<int:provider_id>/",
                self.admin_site.admin_view(self.statement_view),
                name="marketplace_order_earnings_statement",
            ),
            *super().get_urls(),
        ]

    def refund_view(self, request: HttpRequest, order_id: int) -> HttpResponse:
        """Refund an order in full or in part (staff with the change permission)."""
        if not self.has_resolve_permission(request):
            raise PermissionDenied
        order = get_object_or_404(Order.objects.select_related("buyer", "provider"), pk=order_id)
        form = RefundForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                changed = orders.order_refund(
                    order=order,
                    user=_user(request),
                    amount=form.cleaned_data["amount"],
                    note=form.cleaned_data["note"],
                )
            except orders.OrderTransitionError as exc:
                form.add_error(None, exc.message)
            except BillingError as exc:
                form.add_error(None, exc.message)
            except ValidationError as exc:
                form.add_error("amount", "; ".join(exc.messages))
            else:
                amount = changed.refunded_amount
                self.log_change(request, changed, f"Refund: {amount} refunded in all.")
                self.message_user(
                    request, f"Order {order.pk}: refunded, now {changed.state}.", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:marketplace_order_change", args=[order.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Refund order {order.pk}",
            "order": order,
            "form": form,
            "left": format_money(orders.order_left(order), order.currency, with_code=True),
        }
        return TemplateResponse(request, "admin/marketplace/order/refund.html", context)

    def statement_view(self, request: HttpRequest, provider_id: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return _statement_response([provider_id])


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)  # admin views are behind staff login


STATEMENT_HEADER = [
    "provider", "posted_at", "source", "reference", "memo", "amount", "currency", "balance",
]  # fmt: skip


def earnings_statement_csv(*, provider_ids: list[int]) -> str:
    """Each provider's payable lines with a running balance, in major units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATEMENT_HEADER)
    for provider_id in provider_ids:
        for row in orders.provider_earnings_rows(provider_id=provider_id):
            writer.writerow(
                [
                    provider_id,
                    row["posted_at"].isoformat(),
                    row["source"],
                    row["reference"],
                    row["memo"],
                    str(from_minor(row["amount"], row["currency"])),
                    row["currency"],
                    str(from_minor(row["balance"], row["currency"])),
                ]
            )
    return out.getvalue()


def _statement_response(provider_ids: list[int]) -> HttpResponse:
    response = HttpResponse(
        earnings_statement_csv(provider_ids=provider_ids), content_type="text/csv"
    )
    name = "-".join(str(pk) for pk in provider_ids[:5]) or "none"
    response["Content-Disposition"] = f'attachment; filename="provider-earnings-{name}.csv"'
    return response
