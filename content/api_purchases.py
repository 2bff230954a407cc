"""Licence purchase endpoints (/api/v1/, the buyer's account token).

- `POST content/<id>/licenses/` `{license_type, payment_method}` — buy a licence: a one-time
  price is charged now, a recurring one starts a Stripe Subscription, a per-use one is issued
  at once and its uses billed monthly to the payment method (kept on file). 201 with the
  licence and its `key` (shown this once), and `payment.client_secret` while the payment
  waits for the buyer's 3-D Secure step (the licence is `pending` until then); 400 naming
  the field, 404 for an item not on sale, 402 declined, 409 when the exclusive licence is
  taken, 503.
- `GET content/licenses/` — the buyer's licences (key prefix only), newest first.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import request_user
from content import acquire, selectors
from content.models import ContentItem, License
from revenue_site.api_fields import PaymentStepSerializer
from revenue_site.errors import ErrorSerializer


class LicenseSerializer(serializers.ModelSerializer[License]):
    limits = serializers.JSONField(source="license_type.limits", read_only=True)

    class Meta:
        model = License
        fields = [
            "id",
            "key_prefix",
            "status",
            "content",
            "license_type",
            "amount",
            "currency",
            "issued_at",
            "expires_at",
            "limits",
        ]


class PurchasedLicenseSerializer(LicenseSerializer):
    key = serializers.CharField(
        read_only=True, help_text="The full licence key: shown this once, never again."
    )
    payment = PaymentStepSerializer(
        read_only=True,
        allow_null=True,
        help_text=(
            "While `status` is `pending`: the payment the buyer still has to complete (3-D "
            "Secure; a one-time price's PaymentIntent, or a recurring price's first invoice). "
            "The licence turns `active` when Stripe confirms it; unfinished after "
            "`CONTENT_PENDING_PAYMENT_MINUTES` (default 60), it is canceled and the licence "
            "released. Null otherwise."
        ),
    )

    class Meta(LicenseSerializer.Meta):
        fields = [*LicenseSerializer.Meta.fields, "key", "payment"]


class PurchaseInput(serializers.Serializer[Any]):
    license_type = serializers.IntegerField(min_value=1)
    payment_method = serializers.CharField(max_length=255)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


class LicensePurchaseView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="content_license_purchase",
        request=PurchaseInput,
        responses={
            201: PurchasedLicenseSerializer,
            400: _error("Invalid input; `error.fields` names the field."),
            401: _error("Not authenticated."),
            402: _error("The card was declined (`error.decline_code`)."),
            404: _error("No such published item."),
            409: _error("The item's exclusive licence is held or being bought."),
            503: _error("The payment provider is unavailable; retry after `Retry-After`."),
        },
        tags=["content"],
    )
    def post(self, request: Request, item_id: int) -> Response:
        """Buy a licence (one-time: charged now; recurring: a subscription; per use: billed
        monthly for its uses); the key in the answer is shown only once. A payment that needs
        3-D Secure answers a `pending` licence and `payment.client_secret`."""
        data = PurchaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            purchase = acquire.license_acquire(
                buyer=request_user(request),
                item_id=item_id,
                license_type_id=data.validated_data["license_type"],
                payment_method=data.validated_data["payment_method"],
            )
        except ContentItem.DoesNotExist as exc:
            raise exceptions.NotFound() from exc
        body = PurchasedLicenseSerializer(purchase.license).data
        body["key"] = purchase.key
        body["payment"] = purchase.payment.as_dict() if purchase.payment else None
        return Response(body, status=status.HTTP_201_CREATED)


class BuyerLicenseListView(generics.ListAPIView[License]):
    permission_classes = [permissions.IsAuthenticated]
    serializer_class = LicenseSerializer

    def get_queryset(self) -> QuerySet[License]:
        return selectors.buyer_license_list(user=request_user(self.request))

    @extend_schema(
        operation_id="content_licenses_mine",
        responses={200: LicenseSerializer(many=True), 401: _error("Not authenticated.")},
        tags=["content"],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The caller's licences, newest first (paginated with `limit` and `offset`)."""
        return super().get(request, *args, **kwargs)
