"""Staff API over ``analytics.reports``: summary, movements and cohorts (issue 13, part 4).

Staff only: the caller must be ``is_staff`` and hold ``analytics.view_mrrmovement`` (superusers
hold every permission); a customer's or affiliate's token gets 403, no credentials 401. Money is
int minor units, rates strings with 4 decimals or null where undefined (DESIGN.md §6).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import reports
from revenue_site.api_fields import CURRENCY_PATTERN, CurrencyField
from revenue_site.errors import ErrorSerializer
from revenue_site.money import MoneyError, normalize_currency

VIEW_PERMISSION = "analytics.view_mrrmovement"
# Cohort matrices grow with the square of the months; five years is plenty for a screen.
MAX_COHORT_MONTHS = 60


class CanViewRevenueMetrics(permissions.BasePermission):
    """Staff with ``analytics.view_mrrmovement``."""

    message = "Revenue metrics are for staff with the analytics permission."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(
            user and user.is_authenticated and user.is_staff and user.has_perm(VIEW_PERMISSION)
        )


# --- input ---------------------------------------------------------------------------------


def _today() -> date:
    return timezone.now().date()  # settings.TIME_ZONE is UTC; now() is aware


class _CurrencyInput(serializers.Serializer):
    # no trimming: the schema's pattern says what is taken (" usd" is refused, not trimmed)
    currency = CurrencyField(required=False)

    def validate_currency(self, value: str) -> str:
        try:
            return normalize_currency(value)
        except MoneyError as exc:
            raise serializers.ValidationError("Not a three-letter ISO 4217 currency code.") from exc

    def validated_currency(self) -> str:
        """The requested currency, else the only one there is; 400 naming ``currency``."""
        currency = self.validated_data.get("currency")
        if currency:
            return str(currency)
        known = reports.currencies()
        if len(known) == 1:
            return known[0]
        message = (
            "Required: there are several currencies ({}).".format(", ".join(known))
            if known
            else "Required: there is no data in any currency yet."
        )
        raise exceptions.ValidationError({"currency": [message]})


class SummaryInput(_CurrencyInput):
    date = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])


class PeriodInput(_CurrencyInput):
    start = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end = attrs.get("end") or _today()
        start = attrs.get("start") or end.replace(day=1)
        if start > end:
            raise serializers.ValidationError({"start": ["Must be on or before end."]})
        return {**attrs, "start": start, "end": end}


class CohortsInput(PeriodInput):
    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if "start" not in self.initial_data:
            # Default: the twelve months up to the end.
            end = attrs["end"]
            year, month = (end.year - 1, end.month + 1) if end.month < 12 else (end.year, 1)
            attrs["start"] = date(year, month, 1)
        start, end = attrs["start"], attrs["end"]
        if (end.year - start.year) * 12 + end.month - start.month + 1 > MAX_COHORT_MONTHS:
            raise serializers.ValidationError(
                {"start": [f"At most {MAX_COHORT_MONTHS} months of cohorts at a time."]}
            )
        return attrs


def _parse(serializer_class: type[serializers.Serializer], request: Request) -> Any:
    data = serializer_class(data=request.query_params)
    data.is_valid(raise_exception=True)
    return data


# --- output (the schema) ------------------------------------------------------------------


def _rate_field(help_text: str) -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text=f"{help_text} 4 decimals; null: ÷ 0.")


class SummarySerializer(serializers.Serializer):
    date = serializers.DateField()
    currency = serializers.CharField()
    mrr = serializers.IntegerField(help_text="Minor units, at the end of `date` (UTC).")
    arr = serializers.IntegerField(help_text="MRR x 12.")
    active_customers = serializers.IntegerField(help_text="Customers with MRR > 0.")
    arpa = serializers.IntegerField(allow_null=True, help_text="MRR / active customers.")
    usage_run_rate = serializers.IntegerField(
        help_text="Metered API usage billed for the last complete month before `date`'s."
    )


class MovementsSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    currency = serializers.CharField()
    mrr_start = serializers.IntegerField(help_text="MRR just before `start` 00:00 UTC.")
    mrr_end = serializers.IntegerField(help_text="MRR at the end of `end`.")
    new = serializers.IntegerField()
    expansion = serializers.IntegerField()
    contraction = serializers.IntegerField(help_text="A positive amount.")
    churn = serializers.IntegerField(help_text="A positive amount.")
    reactivation = serializers.IntegerField()
    net_new = serializers.IntegerField(help_text="mrr_end - mrr_start.")
    customers_start = serializers.IntegerField()
    customers_churned = serializers.IntegerField()
    customer_churn_rate = _rate_field("customers_churned / customers_start.")
    gross_revenue_churn = _rate_field("(churn + contraction) / mrr_start.")
    nrr = _rate_field("(mrr_start + expansion - contraction - churn) / mrr_start.")
    ltv = serializers.IntegerField(
        allow_null=True, help_text="ARPA / monthly customer churn rate; null without churn."
    )
    quick_ratio = _rate_field("(new + expansion + reactivation) / (contraction + churn).")


class CohortRowSerializer(serializers.Serializer):
    cohort = serializers.CharField(help_text="YYYY-MM: the customers' first paid month.")
    customers = serializers.IntegerField()
    mrr = serializers.IntegerField(help_text="The cohort's MRR at the end of its month.")
    customer_retention = serializers.ListField(
        child=serializers.CharField(allow_null=True), help_text="Index k: k months later."
    )
    revenue_retention = serializers.ListField(
        child=serializers.CharField(allow_null=True), help_text="Index k: k months later."
    )


class CohortsSerializer(serializers.Serializer):
    currency = serializers.CharField()
    months = serializers.ListField(child=serializers.CharField())
    rows = CohortRowSerializer(many=True)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


ERRORS = {
    400: _error(
        "Invalid parameters (a date not YYYY-MM-DD, start after end, a currency that is not "
        "an ISO code, or no currency when there are several); `error.fields` names them."
    ),
    401: _error("Not authenticated."),
    403: _error("Not staff with the `analytics.view_mrrmovement` permission."),
    429: _error("Too many requests; retry after the `Retry-After` header's seconds."),
}
CURRENCY = OpenApiParameter(
    "currency",
    OpenApiTypes.STR,
    pattern=CURRENCY_PATTERN,
    description="Lowercase ISO code; may be left out when there is only one currency.",
)
START = OpenApiParameter(
    "start", OpenApiTypes.DATE, description="First day (UTC). Default: the first of end's month."
)
END = OpenApiParameter("end", OpenApiTypes.DATE, description="Last day, inclusive. Default: today.")


def _report_call(call: Any) -> Response:
    try:
        return Response(call().as_dict())
    except reports.ReportError as exc:
        raise exceptions.ValidationError({exc.field: [exc.message]}) from exc


class _StaffView(APIView):
    permission_classes = [CanViewRevenueMetrics]


class SummaryView(_StaffView):
    @extend_schema(
        operation_id="analytics_summary",
        parameters=[
            OpenApiParameter("date", OpenApiTypes.DATE, description="Default: today (UTC)."),
            CURRENCY,
        ],
        responses={200: SummarySerializer, **ERRORS},
        tags=["analytics"],
    )
    def get(self, request: Request) -> Response:
        """MRR, ARR, active customers, ARPA and the usage run-rate at the end of a day."""
        data = _parse(SummaryInput, request)
        currency = data.validated_currency()
        on = data.validated_data.get("date") or _today()
        return _report_call(lambda: reports.summary(on=on, currency=currency))


class MovementsView(_StaffView):
    @extend_schema(
        operation_id="analytics_movements",
        parameters=[START, END, CURRENCY],
        responses={200: MovementsSerializer, **ERRORS},
        tags=["analytics"],
    )
    def get(self, request: Request) -> Response:
        """The MRR movements of [start, end] and churn, NRR, LTV and quick ratio."""
        data = _parse(PeriodInput, request)
        currency = data.validated_currency()
        v = data.validated_data
        return _report_call(
            lambda: reports.movements(start=v["start"], end=v["end"], currency=currency)
        )


class CohortsView(_StaffView):
    @extend_schema(
        operation_id="analytics_cohorts",
        parameters=[
            OpenApiParameter(
                "start",
                OpenApiTypes.DATE,
                description="First day (UTC). Default: the first of the month 11 months "
                f"before end's. At most {MAX_COHORT_MONTHS} months.",
            ),
            END,
            CURRENCY,
        ],
        responses={200: CohortsSerializer, **ERRORS},
        tags=["analytics"],
    )
    def get(self, request: Request) -> Response:
        """Monthly cohorts by first paid month: customer and revenue retention matrices."""
        data = _parse(CohortsInput, request)
        currency = data.validated_currency()
        v = data.validated_data
        return _report_call(
            lambda: reports.cohorts(start=v["start"], end=v["end"], currency=currency)
        )


__all__ = ["CohortsView", "MovementsView", "SummaryView"]
