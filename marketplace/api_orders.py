"""Marketplace order endpoints (/api/v1/, the account token of a buyer or a provider).

- `POST marketplace/orders/` `{package, requirements, payment_method?}` — order a package of a
  published listing (paid at once with `payment_method`).
- `GET marketplace/orders/` (`role=buyer|provider`, `state=`) and `GET …/orders/<id>/` — the
  caller's orders: those they bought, and those of their listings; anyone else's id is 404.
- `POST marketplace/orders/<id>/<transition>` — `quote` `{price?, note?}`, `pay`
  `{payment_method}`, `start`, `deliver`, `request-revision`, `accept`, `dispute`, `cancel`
  (`{note?}`). A transition the order's state or the caller's role does not allow is 409
  with `error.state`, the order's current state.
- `GET/POST marketplace/orders/<id>/messages/` — messages between buyer and provider.
- `GET provider/earnings/`, `GET provider/payouts/` — the provider's payable balance and
  statement, their payouts and order transfers.

Views parse input and call ``marketplace.orders`` (writes) or ``marketplace.order_selectors``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import exceptions, generics, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import request_user
from ledger.models import Payout
from marketplace import order_selectors, orders
from marketplace.models import ListingPackage, Order, OrderEvent, OrderMessage, Provider
from revenue_site.errors import ErrorSerializer, error_body

# --- serializers ---------------------------------------------------------------------------


class OrderEventSerializer(serializers.ModelSerializer[OrderEvent]):
    class Meta:
        model = OrderEvent
        fields = ["transition", "from_state", "to_state", "actor", "amount", "note", "at"]


class OrderSerializer(serializers.ModelSerializer[Order]):
    role = serializers.SerializerMethodField(help_text="The caller's role: buyer or provider.")
    transitions = serializers.SerializerMethodField(
        help_text="The transitions the caller may take now (their URL names)."
    )

    class Meta:
        model = Order
        fields = [
            "id",
            "state",
            "role",
            "transitions",
            "buyer",
            "provider",
            "listing",
            "package",
            "price",
            "currency",
            "commission_percent",
            "requirements",
            "quote_note",
            "revisions_allowed",
            "revisions_used",
            "refunded_amount",
            "disputed_amount",
            "created_at",
            "quoted_at",
            "paid_at",
            "delivered_at",
            "accepted_at",
            "released_at",
            "closed_at",
        ]

    def _role(self, order: Order) -> str | None:
        request = self.context.get("request")
        if request is None:
            return None
        return orders.order_actor(order=order, user=request_user(request))

    def get_role(self, order: Order) -> str | None:
        return self._role(order)

    def get_transitions(self, order: Order) -> list[str]:
        role = self._role(order)
        if role is None:
            return []
        allowed = set(orders.transitions_available(order=order, actor=role))
        return [url for url, name in orders.API_TRANSITIONS.items() if name in allowed]


class OrderDetailSerializer(OrderSerializer):
    events = OrderEventSerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "events"]


class OrderCreateInput(serializers.Serializer[Any]):
    package = serializers.IntegerField(min_value=1)
    requirements = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    payment_method = serializers.CharField(max_length=255, required=False)


class TransitionInput(serializers.Serializer[Any]):
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    price = serializers.IntegerField(
        min_value=0, required=False, help_text="`quote` only: a custom price in minor units."
    )
    payment_method = serializers.CharField(
        max_length=255, required=False, help_text="`pay` only (required there): a Stripe id."
    )


class OrderMessageSerializer(serializers.ModelSerializer[OrderMessage]):
    author = serializers.IntegerField(source="author_id", read_only=True)

    class Meta:
        model = OrderMessage
        fields = ["id", "author", "body", "created_at"]
        read_only_fields = ["id", "author", "created_at"]


ConflictSerializer = inline_serializer(
    name="OrderTransitionConflict",
    fields={
        "error": inline_serializer(
            name="OrderTransitionConflictBody",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(child=serializers.ListField()),
                "state": serializers.ChoiceField(
                    choices=Order.State.choices, help_text="The order's current state."
                ),
            },
        )
    },
)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


def conflict_response(exc: orders.OrderTransitionError) -> Response:
    body = error_body(exc.code, exc.message)
    body["error"]["state"] = exc.state
    return Response(body, status=status.HTTP_409_CONFLICT)


UNAUTHENTICATED = {401: _error("Not authenticated.")}
NOT_THE_CALLERS = {**UNAUTHENTICATED, 404: _error("Not one of the caller's orders.")}


def _detail(request: Request, order: Order, code: int = status.HTTP_200_OK) -> Response:
    order = order_selectors.order_get_for(user=request_user(request), order_id=order.pk)
    return Response(OrderDetailSerializer(order, context={"request": request}).data, status=code)


# --- views ---------------------------------------------------------------------------------

TAGS = ["marketplace orders"]


class CallerView(APIView):
    """Base of the order and provider views: token auth, the caller's own objects only."""

    permission_classes = [permissions.IsAuthenticated]

    def caller_order(self) -> Order:
        """The order of the URL's ``order_id`` if it is the caller's (as buyer or provider);
        anyone else's id is 404."""
        try:
            return order_selectors.order_get_for(
                user=request_user(self.request), order_id=self.kwargs["order_id"]
            )
        except Order.DoesNotExist as exc:
            raise exceptions.NotFound() from exc

    def caller_provider(self) -> Provider:
        """The caller's provider profile; 403 for a caller who is not a provider."""
        provider = order_selectors.provider_for(user=request_user(self.request))
        if provider is None:
            raise exceptions.PermissionDenied("Only providers have earnings.")
        return provider


@extend_schema_view(
    get=extend_schema(
        operation_id="marketplace_orders_list",
        description="The caller's orders as buyer and as provider, newest first "
        "(`limit`, `offset`).",
        parameters=[
            OpenApiParameter("role", str, enum=["buyer", "provider"], required=False),
            OpenApiParameter("state", str, enum=Order.State.values, required=False),
        ],
        responses={
            200: OrderSerializer(many=True),
            400: _error("Bad `role` or `state`."),
            **UNAUTHENTICATED,
        },
        tags=TAGS,
    )
)
class OrderListCreateView(CallerView, generics.ListAPIView[Order]):
    serializer_class = OrderSerializer

    def get_queryset(self) -> QuerySet[Order]:
        params = self.request.query_params
        # Empty is not given, as for every optional query parameter (revenue_site.schema).
        role = params.get("role") or None
        if role not in (None, "buyer", "provider"):
            raise exceptions.ValidationError({"role": ["buyer or provider."]})
        state = params.get("state") or None
        if state is not None and state not in Order.State.values:
            raise exceptions.ValidationError({"state": ["Not an order state."]})
        return order_selectors.order_list_for(
            user=request_user(self.request), role=role, state=state
        )

    @extend_schema(
        operation_id="marketplace_orders_create",
        request=OrderCreateInput,
        responses={
            201: OrderDetailSerializer,
            400: _error("Invalid input; `error.fields` names the field."),
            **UNAUTHENTICATED,
            402: _error("The card was declined (`error.decline_code`); the order stays requested."),
            404: _error("No such package on a published listing."),
            409: OpenApiResponse(ConflictSerializer, description="The order cannot be paid."),
            503: _error("The payment provider is unavailable; retry after `Retry-After`."),
        },
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        """Order a package (`requested`); with `payment_method` it is paid at once."""
        data = OrderCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            order = orders.order_create(
                buyer=request_user(request),
                package_id=data.validated_data["package"],
                requirements=data.validated_data.get("requirements", ""),
                payment_method=data.validated_data.get("payment_method"),
            )
        except ListingPackage.DoesNotExist as exc:
            raise exceptions.NotFound() from exc
        except orders.OrderTransitionError as exc:
            return conflict_response(exc)
        return _detail(request, order, status.HTTP_201_CREATED)


class OrderDetailView(CallerView):
    @extend_schema(
        operation_id="marketplace_orders_retrieve",
        responses={200: OrderDetailSerializer, **NOT_THE_CALLERS},
        tags=TAGS,
    )
    def get(self, request: Request, order_id: int) -> Response:
        """One of the caller's orders with its state history."""
        return _detail(request, self.caller_order())


class OrderTransitionView(CallerView):
    @extend_schema(
        operation_id="marketplace_orders_transition",
        request=TransitionInput,
        parameters=[
            OpenApiParameter(
                "transition", str, OpenApiParameter.PATH, enum=list(orders.API_TRANSITIONS)
            )
        ],
        responses={
            200: OrderDetailSerializer,
            400: _error("Invalid input (`price`, `payment_method`, `note`)."),
            **UNAUTHENTICATED,
            402: _error("`pay`: the card was declined (`error.decline_code`)."),
            404: _error("Not one of the caller's orders, or no such transition."),
            409: OpenApiResponse(
                ConflictSerializer,
                description="Not allowed from the order's state or for the caller's role; "
                "`error.state` is the current state.",
            ),
            503: _error("The payment provider is unavailable; retry after `Retry-After`."),
        },
        tags=TAGS,
    )
    def post(self, request: Request, order_id: int, transition: str) -> Response:
        """Take a transition: quote, pay, start, deliver, request-revision, accept, dispute,
        cancel."""
        name = orders.API_TRANSITIONS.get(transition)
        if name is None:
            raise exceptions.NotFound()
        order = self.caller_order()
        data = TransitionInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        user = request_user(request)
        note = values.get("note", "")
        try:
            if name == "quote":
                orders.order_quote(order=order, user=user, price=values.get("price"), note=note)
            elif name == "pay":
                if not values.get("payment_method"):
                    raise exceptions.ValidationError(
                        {"payment_method": ["Required to pay: a Stripe payment method id."]}
                    )
                orders.order_pay(order=order, user=user, payment_method=values["payment_method"])
            elif name == "start":
                orders.order_start(order=order, user=user, note=note)
            elif name == "deliver":
                orders.order_deliver(order=order, user=user, note=note)
            elif name == "request_revision":
                orders.order_request_revision(order=order, user=user, note=note)
            elif name == "accept":
                orders.order_accept(order=order, user=user, note=note)
            elif name == "dispute":
                orders.order_dispute(order=order, user=user, note=note)
            else:
                orders.order_cancel(order=order, user=user, note=note)
        except orders.OrderTransitionError as exc:
            return conflict_response(exc)
        return _detail(request, order)


@extend_schema_view(
    get=extend_schema(
        operation_id="marketplace_order_messages_list",
        description="The order's messages, oldest first (`limit`, `offset`).",
        responses={200: OrderMessageSerializer(many=True), **NOT_THE_CALLERS},
        tags=TAGS,
    )
)
class OrderMessagesView(CallerView, generics.ListAPIView[OrderMessage]):
    serializer_class = OrderMessageSerializer

    def get_queryset(self) -> QuerySet[OrderMessage]:
        return order_selectors.order_messages(order=self.caller_order())

    @extend_schema(
        operation_id="marketplace_order_messages_create",
        request=OrderMessageSerializer,
        responses={
            201: OrderMessageSerializer,
            400: _error("Empty or too long `body`."),
            **NOT_THE_CALLERS,
        },
        tags=TAGS,
    )
    def post(self, request: Request, order_id: int) -> Response:
        """Write to the other party of the order."""
        order = self.caller_order()
        data = OrderMessageSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = orders.order_message_create(
            order=order, user=request_user(request), body=data.validated_data["body"]
        )
        return Response(OrderMessageSerializer(message).data, status=status.HTTP_201_CREATED)


# --- provider earnings and payouts -------------------------------------------------------------


NOT_A_PROVIDER = {**UNAUTHENTICATED, 403: _error("The caller is not a provider.")}


StatementLines = inline_serializer(
    name="ProviderStatementLine",
    many=True,
    fields={
        "posted_at": serializers.DateTimeField(),
        "source": serializers.CharField(),
        "reference": serializers.CharField(),
        "memo": serializers.CharField(),
        "amount": serializers.IntegerField(help_text="Minor units: + owed to you, - paid out."),
        "currency": serializers.CharField(),
        "balance": serializers.IntegerField(),
    },
)
EarningsSerializer = inline_serializer(
    name="ProviderEarnings",
    fields={
        "balances": inline_serializer(
            name="ProviderBalance",
            fields={"currency": serializers.CharField(), "payable": serializers.IntegerField()},
            many=True,
        ),
        "statement": StatementLines,
    },
)


class ProviderEarningsView(CallerView):
    @extend_schema(
        operation_id="provider_earnings",
        responses={200: EarningsSerializer, **NOT_A_PROVIDER},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        """What the platform owes the provider per currency (released earnings less transfers,
        payouts and clawbacks) and their statement, oldest line first."""
        provider = self.caller_provider()
        rows = orders.provider_earnings_rows(provider_id=provider.pk)
        last = {row["currency"]: row["balance"] for row in rows}
        balances = [{"currency": c, "payable": amount} for c, amount in sorted(last.items())]
        return Response({"balances": balances, "statement": rows})


class ProviderPayoutSerializer(serializers.ModelSerializer[Payout]):
    class Meta:
        model = Payout
        fields = [
            "id",
            "amount",
            "currency",
            "method",
            "status",
            "skip_reason",
            "paid_at",
            "stripe_transfer_id",
        ]


class OrderTransferSerializer(serializers.ModelSerializer[Order]):
    order = serializers.IntegerField(source="pk")
    amount = serializers.IntegerField(source="transferred_amount")

    class Meta:
        model = Order
        fields = ["order", "amount", "currency", "stripe_transfer_id", "released_at"]


ProviderPayoutsSerializer = inline_serializer(
    name="ProviderPayouts",
    fields={
        "payouts": ProviderPayoutSerializer(many=True),
        "order_transfers": OrderTransferSerializer(many=True),
    },
)


class ProviderPayoutsView(CallerView):
    @extend_schema(
        operation_id="provider_payouts",
        responses={200: ProviderPayoutsSerializer, **NOT_A_PROVIDER},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        """Payouts of the payout engine (bank / Connect) and the Connect transfers made when
        orders were released (net of reversals), newest first (at most 200 of each)."""
        provider = self.caller_provider()
        payouts = order_selectors.provider_payouts(provider=provider)[:200]
        transfers = order_selectors.provider_transfers(provider=provider)[:200]
        return Response(
            {
                "payouts": ProviderPayoutSerializer(payouts, many=True).data,
                "order_transfers": OrderTransferSerializer(transfers, many=True).data,
            }
        )
