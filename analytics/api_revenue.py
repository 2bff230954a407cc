"""Staff API: revenue and costs by stream from the ledger (issue 13, part 4).

``GET /api/v1/analytics/revenue?start=&end=&group_by=month&currency=``: the rows and totals of
``analytics.revenue.revenue_by_stream`` and the period's affiliate ROI. Staff only: the caller
must be ``is_staff`` and hold ``ledger.view_entry`` (the report reads the ledger; superusers
hold every permission); a customer's or affiliate's token gets 403, no credentials 401. Money
is int minor units, rates strings with 4 decimals or null where undefined. Bad input answers
400 naming the field.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import revenue
from revenue_site.api_fields import CURRENCY_PATTERN, CurrencyField
from revenue_site.errors import ErrorSerializer
from revenue_site.money import MoneyError, normalize_currency

VIEW_PERMISSION = "ledger.view_entry"
# A report of ten years of months is the most a screen (or a CSV) needs at once.
MAX_MONTHS = 120
GROUP_BY_NONE = "none"


class CanViewLedger(permissions.BasePermission):
    """Staff with ``ledger.view_entry``."""

    message = "Revenue by stream is for staff who may read the ledger."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(
            user and user.is_authenticated and user.is_staff and user.has_perm(VIEW_PERMISSION)
        )


class RevenueInput(serializers.Serializer[Any]):
    currency = CurrencyField()
    start = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
    group_by = serializers.ChoiceField(
        choices=[*revenue.GROUP_BY_CHOICES, GROUP_BY_NONE], default="month"
    )

    def validate_currency(self, value: str) -> str:
        try:
            return normalize_currency(value)
        except MoneyError as exc:
            raise serializers.ValidationError("Not a three-letter ISO 4217 currency code.") from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end = attrs.get("end") or timezone.now().date()
        start = attrs.get("start") or end.replace(day=1)
        if start > end:
            raise serializers.ValidationError({"start": ["Must be on or before end."]})
        if len(revenue.months_between(start, end)) > MAX_MONTHS:
            raise serializers.ValidationError({"start": [f"At most {MAX_MONTHS} months at once."]})
        group_by = None if attrs["group_by"] == GROUP_BY_NONE else attrs["group_by"]
        return {**attrs, "start": start, "end": end, "group_by": group_by}


def _rate_field(help_text: str) -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text=f"{help_text} 4 decimals; null: ÷ 0.")


class StreamRowSerializer(serializers.Serializer[Any]):
    period = serializers.CharField(
        allow_null=True, help_text="YYYY-MM (UTC month); null when not grouped."
    )
    stream = serializers.ChoiceField(
        choices=[*revenue.STREAMS, "total"],
        help_text="The stream; `total` in `totals` (the affiliates row's commissions are not "
        "added again: they are the other streams').",
    )
    gross = serializers.IntegerField(help_text="What buyers paid, excluding sales tax.")
    refunds = serializers.IntegerField(help_text="Refunded, excluding tax (shares included).")
    net_revenue = serializers.IntegerField(
        help_text="gross - refunds - creator_share - provider_share: the platform's revenue."
    )
    commissions = serializers.IntegerField(help_text="Affiliate commissions net of clawbacks.")
    creator_share = serializers.IntegerField(help_text="Creators' shares, net of reversals.")
    provider_share = serializers.IntegerField(help_text="Providers' shares, net of reversals.")
    stripe_fees = serializers.IntegerField(help_text="Stripe's processing fees.")
    disputes = serializers.IntegerField(help_text="Disputed amounts not won back, plus fees.")
    margin = serializers.IntegerField(
        help_text="net_revenue - commissions - stripe_fees - disputes."
    )
    gross_margin = _rate_field("margin / gross.")


class AffiliateRoiSerializer(serializers.Serializer[Any]):
    referred_revenue = serializers.IntegerField(
        help_text="Revenue net of tax of referred customers' commissioned payments in the period."
    )
    commissions = serializers.IntegerField(help_text="Those commissions, net of clawbacks.")
    roi = _rate_field("referred_revenue / commissions.")


class RevenueReportSerializer(serializers.Serializer[Any]):
    start = serializers.DateField()
    end = serializers.DateField()
    currency = serializers.CharField()
    group_by = serializers.CharField(allow_null=True)
    rows = StreamRowSerializer(many=True, help_text="Every stream in every period.")
    totals = StreamRowSerializer(many=True, help_text="One row per period.")
    affiliate_roi = AffiliateRoiSerializer()


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


class RevenueView(APIView):
    permission_classes = [CanViewLedger]

    @extend_schema(
        operation_id="analytics_revenue",
        parameters=[
            OpenApiParameter(
                "currency",
                OpenApiTypes.STR,
                required=True,
                pattern=CURRENCY_PATTERN,
                description="A three-letter ISO 4217 code, e.g. usd.",
            ),
            OpenApiParameter(
                "start", OpenApiTypes.DATE, description="Default: the first day of end's month."
            ),
            OpenApiParameter("end", OpenApiTypes.DATE, description="Inclusive. Default: today."),
            OpenApiParameter(
                "group_by",
                OpenApiTypes.STR,
                enum=[*revenue.GROUP_BY_CHOICES, GROUP_BY_NONE],
                description="`month` (default) or `none` (one row per stream).",
            ),
        ],
        responses={
            200: RevenueReportSerializer,
            400: _error("Invalid parameters; `error.fields` names them."),
            401: _error("Not authenticated."),
            403: _error("Not staff with the permission to read the ledger."),
            429: _error("Too many requests; retry after the `Retry-After` header's seconds."),
        },
        tags=["analytics"],
    )
    def get(self, request: Request) -> Response:
        """Revenue and costs by stream from the ledger over [start, end] (UTC days): gross,
        refunds, net revenue, commissions, creator and provider shares, Stripe fees, disputes,
        margin and gross margin, per month and stream; and the affiliate program's ROI."""
        data = RevenueInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        start: date = v["start"]
        end: date = v["end"]
        report = revenue.revenue_by_stream(
            start=start, end=end, currency=v["currency"], group_by=v["group_by"]
        )
        roi = revenue.affiliate_roi(start=start, end=end, currency=v["currency"])
        body = report.as_dict()
        body["affiliate_roi"] = {
            "referred_revenue": roi.referred_revenue,
            "commissions": roi.commissions,
            "roi": roi.roi,
        }
        return Response(body)


__all__ = ["RevenueView"]
