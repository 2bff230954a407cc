"""Affiliate API (/api/v1/affiliate/, token auth): the portal's data for the caller's affiliate.

Every read goes through affiliates.selectors scoped by the caller's affiliate, so another
affiliate's id is a 404. A user without an approved affiliate account gets 403.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from affiliates import selectors
from affiliates.models import Affiliate, Commission, ReferralLink
from affiliates.services import applications
from ledger.models import PayeeProfile, Payout

# --- permission ------------------------------------------------------------------------------


class IsApprovedAffiliate(permissions.BasePermission):
    message = "This account has no approved affiliate account."

    def has_permission(self, request: Request, view: Any) -> bool:
        affiliate = selectors.affiliate_for_user(user=request.user)
        if affiliate is None or not affiliate.is_approved:
            return False
        request.affiliate = affiliate  # type: ignore[attr-defined]
        return True


class AffiliateAPIView(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApprovedAffiliate]

    @property
    def affiliate(self) -> Affiliate:
        return self.request.affiliate  # type: ignore[attr-defined]


# --- serializers -----------------------------------------------------------------------------


class MeSerializer(serializers.ModelSerializer[Affiliate]):
    email = serializers.EmailField(source="user.email")
    program = serializers.CharField(source="program.slug")
    program_name = serializers.CharField(source="program.name")
    currency = serializers.CharField(source="program.currency")

    class Meta:
        model = Affiliate
        fields = [
            "id",
            "email",
            "status",
            "program",
            "program_name",
            "currency",
            "website",
            "applied_at",
            "decided_at",
        ]


class LinkSerializer(serializers.ModelSerializer[ReferralLink]):
    click_count = serializers.IntegerField(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = ReferralLink
        fields = [
            "id",
            "code",
            "url",
            "campaign",
            "sub_id",
            "landing_path",
            "is_active",
            "click_count",
            "created_at",
        ]

    def get_url(self, link: ReferralLink) -> str:
        request = self.context.get("request")
        path = f"/r/{link.code}"
        return request.build_absolute_uri(path) if request else path


class LinkCreateSerializer(serializers.Serializer[Any]):
    campaign = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    sub_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    landing_path = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )


class CommissionSerializer(serializers.ModelSerializer[Commission]):
    class Meta:
        model = Commission
        fields = [
            "id",
            "status",
            "stripe_invoice_id",
            "stripe_payment_intent_id",
            "base_amount",
            "amount",
            "reversed_amount",
            "currency",
            "paid_at_invoice",
            "available_at",
            "approved_at",
            "reversed_at",
            "created_at",
        ]


class CommissionFilterSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=Commission.Status.choices, required=False)
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)


class PayoutSerializer(serializers.ModelSerializer[Payout]):
    as_of = serializers.DateField(source="batch.as_of")

    class Meta:
        model = Payout
        fields = ["id", "as_of", "amount", "currency", "method", "status", "skip_reason", "paid_at"]


class PayoutSettingsSerializer(serializers.Serializer[Any]):
    method = serializers.ChoiceField(choices=PayeeProfile.Method.choices)
    stripe_account_id = serializers.CharField(required=False, allow_blank=True, default="")
    paypal_email = serializers.CharField(required=False, allow_blank=True, default="")
    bank_account_name = serializers.CharField(required=False, allow_blank=True, default="")
    bank_iban = serializers.CharField(required=False, allow_blank=True, default="")
    bank_bic = serializers.CharField(required=False, allow_blank=True, default="")


class PayoutSettingsOutSerializer(PayoutSettingsSerializer):
    method = serializers.ChoiceField(
        choices=PayeeProfile.Method.choices,
        allow_blank=True,
        help_text='"" until the affiliate chooses a payout method.',
    )


class DayPointSerializer(serializers.Serializer[Any]):
    day = serializers.DateField()
    clicks = serializers.IntegerField()
    earnings = serializers.IntegerField(help_text="Minor units of the program currency.")


class StatsSerializer(serializers.Serializer[Any]):
    clicks = serializers.IntegerField()
    signups = serializers.IntegerField()
    conversions = serializers.IntegerField()
    conversion_rate = serializers.DecimalField(max_digits=7, decimal_places=2)
    currency = serializers.CharField()
    earnings = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text="currency → {held, approved, paid, reversed} in minor units.",
    )
    series = DayPointSerializer(many=True, help_text="The last 90 days.")


# --- views -----------------------------------------------------------------------------------


class MeView(AffiliateAPIView):
    @extend_schema(responses=MeSerializer, tags=["affiliate"])
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(self.affiliate).data)


class LinkListView(AffiliateAPIView, generics.ListAPIView[ReferralLink]):
    serializer_class = LinkSerializer

    def get_queryset(self) -> QuerySet[ReferralLink]:
        return selectors.link_list(affiliate=self.affiliate)

    @extend_schema(tags=["affiliate"])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=LinkCreateSerializer, responses={201: LinkSerializer}, tags=["affiliate"]
    )
    def post(self, request: Request) -> Response:
        data = LinkCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        link = applications.referral_link_create(affiliate=self.affiliate, **data.validated_data)
        link = selectors.link_get(affiliate=self.affiliate, pk=link.pk)
        return Response(
            LinkSerializer(link, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class LinkDetailView(AffiliateAPIView):
    @extend_schema(responses=LinkSerializer, tags=["affiliate"])
    def get(self, request: Request, pk: int) -> Response:
        link = selectors.link_get(affiliate=self.affiliate, pk=pk)
        return Response(LinkSerializer(link, context={"request": request}).data)


class CommissionListView(AffiliateAPIView, generics.ListAPIView[Commission]):
    serializer_class = CommissionSerializer

    def get_queryset(self) -> QuerySet[Commission]:
        filters = CommissionFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.commission_list(affiliate=self.affiliate, **filters.validated_data)

    @extend_schema(parameters=[CommissionFilterSerializer], tags=["affiliate"])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class CommissionDetailView(AffiliateAPIView):
    @extend_schema(responses=CommissionSerializer, tags=["affiliate"])
    def get(self, request: Request, pk: int) -> Response:
        return Response(
            CommissionSerializer(selectors.commission_get(affiliate=self.affiliate, pk=pk)).data
        )


class PayoutListView(AffiliateAPIView, generics.ListAPIView[Payout]):
    serializer_class = PayoutSerializer

    def get_queryset(self) -> QuerySet[Payout]:
        return selectors.payout_list(affiliate=self.affiliate)

    @extend_schema(tags=["affiliate"])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class StatsView(AffiliateAPIView):
    @extend_schema(responses=StatsSerializer, tags=["affiliate"])
    def get(self, request: Request) -> Response:
        stats = selectors.affiliate_stats(affiliate=self.affiliate)
        return Response(StatsSerializer(stats).data)


class PayoutSettingsView(AffiliateAPIView):
    @extend_schema(
        responses={200: PayoutSettingsOutSerializer},
        tags=["affiliate"],
    )
    def get(self, request: Request) -> Response:
        profile = selectors.payee_profile_get(affiliate=self.affiliate)
        if profile is None:
            return Response(PayoutSettingsOutSerializer({"method": ""}).data)
        return Response(PayoutSettingsOutSerializer(profile).data)

    @extend_schema(
        request=PayoutSettingsSerializer,
        responses={200: PayoutSettingsOutSerializer},
        tags=["affiliate"],
    )
    def put(self, request: Request) -> Response:
        data = PayoutSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile = applications.affiliate_payout_settings_update(
            affiliate=self.affiliate, **data.validated_data
        )
        return Response(PayoutSettingsOutSerializer(profile).data)
