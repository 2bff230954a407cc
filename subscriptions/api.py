"""Customer billing API (/api/v1/): the public catalog, the caller's subscriptions, invoices,
entitlements, and Stripe Checkout / Billing Portal sessions.

Views parse input and call selectors (reads, scoped to the caller: someone else's object is a
404) or services (writes). Service errors become the API error shape: bad input 400 naming the
field, a declined card 402 with Stripe's decline code, a state conflict 409, Stripe itself
unavailable 503 with Retry-After (revenue_site.stripe_errors).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import stripe
from django.conf import settings
from djstripe import models as djstripe_models
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import request_user
from revenue_site.api_fields import PaymentStepSerializer
from revenue_site.errors import ErrorSerializer, billing_error_response
from revenue_site.redirects import RedirectURLField
from revenue_site.stripe_payloads import stripe_time
from subscriptions import selectors
from subscriptions.models import Plan, PlanPrice
from subscriptions.pricing import Tier, tiers_normalised
from subscriptions.services import billing

# --- serializers (output) ------------------------------------------------------------------


class EntitlementsSerializer(serializers.Serializer[Any]):
    seats = serializers.IntegerField(allow_null=True, help_text="null: unlimited.")
    api_calls_per_month = serializers.IntegerField(allow_null=True, help_text="null: unlimited.")
    features = serializers.DictField(child=serializers.BooleanField())


class CustomerEntitlementsSerializer(EntitlementsSerializer):
    plans = serializers.ListField(child=serializers.CharField(), help_text="Plan slugs.")


class PriceTierSerializer(serializers.Serializer[Any]):
    up_to = serializers.IntegerField(allow_null=True, help_text="null: the open-ended last tier.")
    unit_amount = serializers.IntegerField()
    flat_amount = serializers.IntegerField()


class PlanPriceSerializer(serializers.ModelSerializer[PlanPrice]):
    id = serializers.CharField(source="stripe_price_id", help_text="The Stripe Price id.")
    tiers_mode = serializers.SerializerMethodField()
    tiers = serializers.SerializerMethodField()

    class Meta:
        model = PlanPrice
        fields = [
            "id",
            "lookup_key",
            "nickname",
            "currency",
            "interval",
            "interval_count",
            "billing_scheme",
            "unit_amount",
            "tiers_mode",
            "tiers",
            "usage_type",
            "trial_days",
        ]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_tiers_mode(self, obj: PlanPrice) -> str | None:
        return obj.tiers_mode or None

    @extend_schema_field(PriceTierSerializer(many=True))
    def get_tiers(self, obj: PlanPrice) -> list[Tier]:
        if obj.billing_scheme != PlanPrice.BillingScheme.TIERED:
            return []
        return tiers_normalised(obj.tiers)


class PlanSerializer(serializers.ModelSerializer[Plan]):
    prices = PlanPriceSerializer(many=True)
    entitlements = serializers.SerializerMethodField()

    class Meta:
        model = Plan
        fields = ["slug", "name", "description", "tier_rank", "prices", "entitlements"]

    @extend_schema_field(EntitlementsSerializer)
    def get_entitlements(self, obj: Plan) -> dict[str, Any]:
        return {
            "seats": obj.seats,
            "api_calls_per_month": obj.api_calls_per_month,
            "features": {k: bool(v) for k, v in (obj.features or {}).items()},
        }


class SubscriptionSerializer(serializers.Serializer[djstripe_models.Subscription]):
    """A subscription as the customer sees it (read from the dj-stripe mirror)."""

    id = serializers.CharField()
    status = serializers.CharField()
    price = serializers.SerializerMethodField()
    quantity = serializers.SerializerMethodField()
    current_period_end = serializers.SerializerMethodField()
    cancel_at_period_end = serializers.SerializerMethodField()
    trial_end = serializers.SerializerMethodField()

    @staticmethod
    def _item(obj: djstripe_models.Subscription) -> dict[str, Any]:
        items = (obj.stripe_data.get("items") or {}).get("data") or []
        return items[0] if items else {}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_price(self, obj: djstripe_models.Subscription) -> str | None:
        price = self._item(obj).get("price")
        return price.get("id") if isinstance(price, dict) else price

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_quantity(self, obj: djstripe_models.Subscription) -> int | None:
        return self._item(obj).get("quantity")

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_current_period_end(self, obj: djstripe_models.Subscription) -> datetime | None:
        # Stripe keeps the period on each item (not on the subscription since 2025-03-31).
        return stripe_time(self._item(obj).get("current_period_end"))

    @extend_schema_field(serializers.BooleanField())
    def get_cancel_at_period_end(self, obj: djstripe_models.Subscription) -> bool:
        return bool(obj.stripe_data.get("cancel_at_period_end"))

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_trial_end(self, obj: djstripe_models.Subscription) -> datetime | None:
        return stripe_time(obj.stripe_data.get("trial_end"))


class SubscriptionCreatedSerializer(SubscriptionSerializer):
    payment = PaymentStepSerializer(
        read_only=True,
        allow_null=True,
        help_text="While `status` is `incomplete` (the first payment needs 3-D Secure): the "
        "payment the customer confirms in their browser; the subscription turns `active` when "
        "Stripe confirms it, and Stripe ends it (`incomplete_expired`) after 23 hours. Null "
        "otherwise.",
    )


class InvoiceSerializer(serializers.Serializer[djstripe_models.Invoice]):
    id = serializers.CharField()
    number = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()
    amount_due = serializers.SerializerMethodField()
    amount_paid = serializers.SerializerMethodField()
    currency = serializers.SerializerMethodField()
    created = serializers.DateTimeField()
    hosted_invoice_url = serializers.SerializerMethodField()

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_number(self, obj: djstripe_models.Invoice) -> str | None:
        return obj.stripe_data.get("number")

    @extend_schema_field(serializers.CharField())
    def get_status(self, obj: djstripe_models.Invoice) -> str | None:
        return obj.stripe_data.get("status")

    @extend_schema_field(serializers.IntegerField(help_text="Minor units."))
    def get_amount_due(self, obj: djstripe_models.Invoice) -> int:
        return int(obj.stripe_data.get("amount_due") or 0)

    @extend_schema_field(serializers.IntegerField(help_text="Minor units."))
    def get_amount_paid(self, obj: djstripe_models.Invoice) -> int:
        return int(obj.stripe_data.get("amount_paid") or 0)

    @extend_schema_field(serializers.CharField())
    def get_currency(self, obj: djstripe_models.Invoice) -> str:
        return str(obj.stripe_data.get("currency") or "").lower()

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_hosted_invoice_url(self, obj: djstripe_models.Invoice) -> str | None:
        return obj.stripe_data.get("hosted_invoice_url")


class SessionSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    url = serializers.URLField()


# --- serializers (input) -------------------------------------------------------------------


class SubscriptionCreateInput(serializers.Serializer[Any]):
    price = serializers.CharField(max_length=255, help_text="Stripe Price id from /plans/.")
    quantity = serializers.IntegerField(min_value=1, max_value=100_000, default=1)
    payment_method = serializers.CharField(max_length=255, help_text="Stripe PaymentMethod id.")
    coupon = serializers.CharField(max_length=255, required=False, allow_blank=False)
    trial_days = serializers.IntegerField(min_value=0, max_value=730, required=False)
    referral_code = serializers.CharField(max_length=64, required=False, allow_blank=False)


class SubscriptionChangeInput(serializers.Serializer[Any]):
    # At least one of them; the schema says so too (revenue_site.schema.AutoSchema).
    one_of_required = ("price", "quantity")

    price = serializers.CharField(max_length=255, required=False)
    quantity = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    proration_behavior = serializers.ChoiceField(
        choices=billing.PRORATION_BEHAVIORS, default="create_prorations"
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "price" not in attrs and "quantity" not in attrs:
            raise serializers.ValidationError("Give a new price or quantity.")
        return attrs


class SubscriptionCancelInput(serializers.Serializer[Any]):
    at_period_end = serializers.BooleanField(
        default=True, help_text="false cancels now; true (default) at the end of the period."
    )


class CheckoutSessionInput(serializers.Serializer[Any]):
    price = serializers.CharField(max_length=255)
    quantity = serializers.IntegerField(min_value=1, max_value=100_000, default=1)
    success_url = RedirectURLField(max_length=2000)
    cancel_url = RedirectURLField(max_length=2000)


class PortalSessionInput(serializers.Serializer[Any]):
    return_url = RedirectURLField(max_length=2000)


# --- error mapping -------------------------------------------------------------------------

ERROR_RESPONSES = {
    400: OpenApiResponse(
        ErrorSerializer,
        description="Invalid input (ours or as Stripe refused it); `error.fields` names the "
        "field and `error.param` Stripe's parameter.",
    ),
    401: OpenApiResponse(ErrorSerializer, description="Not authenticated."),
    404: OpenApiResponse(ErrorSerializer, description="Not found (or another customer's)."),
    503: OpenApiResponse(
        ErrorSerializer,
        description="Stripe is unavailable (unreachable, failing, rate limiting, or refusing "
        "our key); retry after the `Retry-After` header's seconds (also `error.retry_after`).",
    ),
}
DECLINED = OpenApiResponse(
    ErrorSerializer, description="Card declined; `error.decline_code` says why."
)
CONFLICT = OpenApiResponse(
    ErrorSerializer, description="The subscription's state does not allow it (e.g. canceled)."
)


def _call_service(call: Callable[[], Any]) -> Any | Response:
    """Run a service; map billing and Stripe errors to the API error shape."""
    try:
        return call()
    except (billing.BillingError, stripe.StripeError) as exc:
        return billing_error_response(exc)


def _request_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    return key[:255] or None


# --- views ---------------------------------------------------------------------------------


class PlanListView(generics.ListAPIView[Plan]):
    """The public catalog: plans on sale, their prices (with tiers) and entitlements."""

    permission_classes = [AllowAny]
    serializer_class = PlanSerializer
    pagination_class = None

    def get_queryset(self) -> Any:
        return selectors.plan_list_public()


class SubscriptionListCreateView(generics.ListAPIView[djstripe_models.Subscription]):
    """GET: the caller's subscriptions, newest first. POST: subscribe."""

    serializer_class = SubscriptionSerializer

    def get_queryset(self) -> Any:
        return selectors.customer_subscription_list(user=request_user(self.request))

    @extend_schema(
        request=SubscriptionCreateInput,
        responses={
            201: SubscriptionCreatedSerializer,
            402: DECLINED,
            **ERROR_RESPONSES,
        },
    )
    def post(self, request: Request) -> Response:
        """Subscribe to a price with a payment method (Stripe Customer created on first use).
        A first payment that needs 3-D Secure answers an `incomplete` subscription and
        `payment.client_secret` for Stripe.js."""
        data = SubscriptionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        user = request_user(request)
        result = _call_service(
            lambda: billing.subscription_create(
                user=user,
                price_id=v["price"],
                quantity=v["quantity"],
                payment_method_id=v["payment_method"],
                coupon=v.get("coupon"),
                trial_days=v.get("trial_days"),
                referral_code=v.get("referral_code"),
                referral_cookie=request.COOKIES.get(settings.AFFILIATE_REFERRAL_COOKIE),
                request_key=_request_key(request),
            )
        )
        if isinstance(result, Response):
            return result
        body = SubscriptionSerializer(result).data
        body["payment"] = billing.subscription_first_payment(subscription=result)
        return Response(body, status=status.HTTP_201_CREATED)


class SubscriptionDetailView(APIView):
    @extend_schema(responses={200: SubscriptionSerializer, **ERROR_RESPONSES})
    def get(self, request: Request, subscription_id: str) -> Response:
        subscription = selectors.customer_subscription_get(
            user=request_user(request), subscription_id=subscription_id
        )
        return Response(SubscriptionSerializer(subscription).data)


class _SubscriptionActionView(APIView):
    def _run(self, request: Request, subscription_id: str, call: Callable[[], Any]) -> Response:
        # Ownership first: another customer's subscription is a 404 before any Stripe call.
        selectors.customer_subscription_get(
            user=request_user(request), subscription_id=subscription_id
        )
        result = _call_service(call)
        if isinstance(result, Response):
            return result
        return Response(SubscriptionSerializer(result).data)


class SubscriptionChangeView(_SubscriptionActionView):
    @extend_schema(
        request=SubscriptionChangeInput,
        responses={200: SubscriptionSerializer, 402: DECLINED, 409: CONFLICT, **ERROR_RESPONSES},
    )
    def post(self, request: Request, subscription_id: str) -> Response:
        """Upgrade or downgrade: a new price and/or quantity, prorated per proration_behavior."""
        data = SubscriptionChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        return self._run(
            request,
            subscription_id,
            lambda: billing.subscription_change(
                subscription_id=subscription_id,
                price_id=v.get("price"),
                quantity=v.get("quantity"),
                proration_behavior=v["proration_behavior"],
            ),
        )


class SubscriptionCancelView(_SubscriptionActionView):
    @extend_schema(
        request=SubscriptionCancelInput,
        responses={200: SubscriptionSerializer, 409: CONFLICT, **ERROR_RESPONSES},
    )
    def post(self, request: Request, subscription_id: str) -> Response:
        """Cancel now (`at_period_end: false`) or at the end of the paid period."""
        data = SubscriptionCancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        at_period_end = data.validated_data["at_period_end"]
        return self._run(
            request,
            subscription_id,
            lambda: billing.subscription_cancel(
                subscription_id=subscription_id, at_period_end=at_period_end
            ),
        )


class SubscriptionResumeView(_SubscriptionActionView):
    @extend_schema(
        request=None,
        responses={200: SubscriptionSerializer, 409: CONFLICT, **ERROR_RESPONSES},
    )
    def post(self, request: Request, subscription_id: str) -> Response:
        """Undo a pending cancel-at-period-end."""
        return self._run(
            request,
            subscription_id,
            lambda: billing.subscription_resume(subscription_id=subscription_id),
        )


class InvoiceListView(generics.ListAPIView[djstripe_models.Invoice]):
    """The caller's invoices, newest first."""

    serializer_class = InvoiceSerializer

    def get_queryset(self) -> Any:
        return selectors.customer_invoice_list(user=request_user(self.request))


class EntitlementsView(APIView):
    @extend_schema(responses={200: CustomerEntitlementsSerializer})
    def get(self, request: Request) -> Response:
        """Effective limits across the caller's active, trialing and past-due subscriptions:
        the highest seats and API quota of those plans (null = unlimited; not summed) and every
        feature any of them enables."""
        entitlements = selectors.customer_entitlements(user=request_user(request))
        return Response(CustomerEntitlementsSerializer(entitlements).data)


class CheckoutSessionView(APIView):
    @extend_schema(
        request=CheckoutSessionInput, responses={201: SessionSerializer, **ERROR_RESPONSES}
    )
    def post(self, request: Request) -> Response:
        """A Stripe Checkout session (subscription mode); redirect the customer to `url`."""
        data = CheckoutSessionInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        v = data.validated_data
        user = request_user(request)
        result = _call_service(
            lambda: billing.checkout_session_create(
                user=user,
                price_id=v["price"],
                quantity=v["quantity"],
                success_url=v["success_url"],
                cancel_url=v["cancel_url"],
                request_key=_request_key(request),
            )
        )
        if isinstance(result, Response):
            return result
        return Response(SessionSerializer(result).data, status=status.HTTP_201_CREATED)


class BillingPortalSessionView(APIView):
    @extend_schema(
        request=PortalSessionInput, responses={201: SessionSerializer, **ERROR_RESPONSES}
    )
    def post(self, request: Request) -> Response:
        """A Stripe Billing Portal session; redirect the customer to `url`."""
        data = PortalSessionInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        return_url = data.validated_data["return_url"]
        user = request_user(request)
        result = _call_service(
            lambda: billing.billing_portal_session_create(
                user=user, return_url=return_url, request_key=_request_key(request)
            )
        )
        if isinstance(result, Response):
            return result
        return Response(SessionSerializer(result).data, status=status.HTTP_201_CREATED)


__all__ = [
    "BillingPortalSessionView",
    "CheckoutSessionView",
    "EntitlementsView",
    "InvoiceListView",
    "PlanListView",
    "SubscriptionCancelView",
    "SubscriptionChangeView",
    "SubscriptionDetailView",
    "SubscriptionListCreateView",
    "SubscriptionResumeView",
]
