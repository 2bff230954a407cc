"""Content endpoints (/api/v1/).

- `content/`, `content/<id>/` — the public catalog: published items and their active licence
  types (no authentication, throttled per IP).
- `creator/…` — a creator's own profile, items, shares and licence types (the creator's
  account token). A signed-in user who is not a creator gets 403; another creator's ids 404.

Views parse input and call services (writes) or selectors (reads, scoped to the caller).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, generics, permissions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import request_user
from content import payouts, selectors, services
from content.models import ContentItem, Creator, LicenseType
from ledger.models import PayeeProfile
from revenue_site.api_fields import CurrencyField
from revenue_site.errors import Conflict, ErrorSerializer
from revenue_site.pagination import LimitOffsetPagination

# --- serializers ---------------------------------------------------------------------------


class CreatorRefSerializer(serializers.ModelSerializer[Creator]):
    class Meta:
        model = Creator
        fields = ["id", "display_name"]


class CatalogLicenseTypeSerializer(serializers.ModelSerializer[LicenseType]):
    price = serializers.IntegerField(
        source="amount", help_text="Minor units (0 for a per-use price)."
    )

    class Meta:
        model = LicenseType
        fields = ["id", "kind", "pricing", "price", "currency", "term_days", "limits", "overage"]


class CatalogItemSerializer(serializers.ModelSerializer[ContentItem]):
    creator = CreatorRefSerializer(source="owner")
    license_types = CatalogLicenseTypeSerializer(source="active_license_types", many=True)

    class Meta:
        model = ContentItem
        fields = ["id", "title", "kind", "description", "creator", "published_at", "license_types"]


class CatalogFilterSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=ContentItem.Kind.choices, required=False)
    creator = serializers.IntegerField(min_value=1, required=False, help_text="A creator's id.")


class CreatorSerializer(serializers.ModelSerializer[Creator]):
    class Meta:
        model = Creator
        fields = ["id", "display_name", "platform_fee_percent", "status", "created_at"]
        read_only_fields = fields


class CreatorPayoutSettingsSerializer(serializers.Serializer[Any]):
    """How the creator is paid (``content.payouts.creator_payout_settings_update``)."""

    method = serializers.ChoiceField(choices=PayeeProfile.Method.choices)
    stripe_account_id = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="stripe_connect: `acct_…`."
    )
    paypal_email = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="paypal: the account's e-mail."
    )
    bank_account_name = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="bank_csv: the holder's name."
    )
    bank_iban = serializers.CharField(required=False, allow_blank=True, default="")
    bank_bic = serializers.CharField(required=False, allow_blank=True, default="")


class CreatorCreateInput(serializers.Serializer[Any]):
    display_name = serializers.CharField(max_length=100)
    payout = CreatorPayoutSettingsSerializer(
        required=False,
        help_text="How you are paid; also later at `PUT /api/v1/creator/payout-settings`. "
        "Without it your earnings wait until you choose.",
    )


class LicenseTypeSerializer(serializers.ModelSerializer[LicenseType]):
    """A licence type as its creator sees and edits it."""

    amount = serializers.IntegerField(
        min_value=0, max_value=2**63 - 1, required=False, help_text="Minor units."
    )
    per_use_unit_amount = serializers.DecimalField(
        max_digits=19,
        decimal_places=6,
        min_value=0,
        required=False,
        allow_null=True,
        coerce_to_string=True,
        help_text="Minor units per use, fractions allowed; also the overage rate.",
    )
    term_days = serializers.IntegerField(
        min_value=1, max_value=36500, required=False, allow_null=True, help_text="null: perpetual."
    )
    currency = CurrencyField()
    limits = serializers.JSONField(
        required=False, help_text="{downloads?, views?, api_calls?, seats?}: whole numbers ≥ 0."
    )

    class Meta:
        model = LicenseType
        # What the service accepts, plus the read-only id and creation time.
        fields = ["id", *services.LICENSE_TYPE_FIELDS, "created_at"]
        read_only_fields = ["id", "created_at"]


class ShareSerializer(serializers.Serializer[Any]):
    creator = serializers.IntegerField(min_value=1, help_text="A creator's id.")
    percent = serializers.DecimalField(max_digits=7, decimal_places=4, coerce_to_string=True)


class SharesInput(serializers.Serializer[Any]):
    shares = ShareSerializer(many=True, allow_empty=False)


class ShareOutSerializer(serializers.Serializer[Any]):
    creator = CreatorRefSerializer()
    percent = serializers.DecimalField(max_digits=7, decimal_places=4)


class CreatorItemSerializer(serializers.ModelSerializer[ContentItem]):
    license_types = LicenseTypeSerializer(many=True, read_only=True)
    shares = serializers.SerializerMethodField()

    class Meta:
        model = ContentItem
        fields = [
            "id",
            "title",
            "kind",
            "description",
            "status",
            "platform_fee_percent",
            "moderation_note",
            "published_at",
            "created_at",
            "updated_at",
            "license_types",
            "shares",
        ]
        read_only_fields = fields

    @staticmethod
    def _shares(item: ContentItem) -> list[dict[str, Any]]:
        rows = list(item.shares.all())  # prefetched by the selector
        if not rows:
            return [{"creator": item.owner, "percent": services.HUNDRED}]
        return [{"creator": row.creator, "percent": row.percent} for row in rows]

    @extend_schema_field(ShareOutSerializer(many=True))
    def get_shares(self, item: ContentItem) -> list[dict[str, Any]]:
        return ShareOutSerializer(self._shares(item), many=True).data  # type: ignore[return-value]


class ItemCreateInput(serializers.Serializer[Any]):
    title = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=ContentItem.Kind.choices)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class ItemUpdateInput(serializers.Serializer[Any]):
    title = serializers.CharField(max_length=200, required=False)
    kind = serializers.ChoiceField(choices=ContentItem.Kind.choices, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(
        choices=ContentItem.Status.choices,
        required=False,
        help_text="published publishes (not for a suspended creator or an item staff took "
        "down); draft unpublishes; archived archives.",
    )


# --- errors in the schema ------------------------------------------------------------------


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


PUBLIC_ERRORS = {429: _error("Too many requests; retry after `Retry-After` seconds.")}
TOKEN_ERRORS = {
    401: _error("Not authenticated (send the account token: `Authorization: Token …`)."),
    429: _error("Too many requests; retry after `Retry-After` seconds."),
}
CREATOR_ERRORS = {**TOKEN_ERRORS, 403: _error("This account is not a creator.")}
INVALID = _error("Invalid input; `error.fields` names the field.")
NOT_YOURS = _error("Not found (or another creator's).")


# --- catalog (public) ----------------------------------------------------------------------


class CatalogListView(generics.ListAPIView[ContentItem]):
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    serializer_class = CatalogItemSerializer

    def get_queryset(self) -> QuerySet[ContentItem]:
        filters = CatalogFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        v = filters.validated_data
        return selectors.catalog_list(kind=v.get("kind"), creator_id=v.get("creator"))

    @extend_schema(
        operation_id="content_catalog_list",
        parameters=[CatalogFilterSerializer],
        responses={
            200: CatalogItemSerializer(many=True),
            400: _error("Invalid filter; `error.fields` names it."),
            **PUBLIC_ERRORS,
        },
        tags=["content"],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Published content, newest first, with the licence types on sale; filter by `kind`
        and `creator`; paginated with `limit` and `offset`."""
        return super().get(request, *args, **kwargs)


class CatalogDetailView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        operation_id="content_catalog_retrieve",
        responses={
            200: CatalogItemSerializer,
            404: _error("No published item with this id."),
            **PUBLIC_ERRORS,
        },
        tags=["content"],
    )
    def get(self, request: Request, item_id: int) -> Response:
        """One published item with the licence types on sale."""
        try:
            item = selectors.catalog_get(item_id=item_id)
        except ContentItem.DoesNotExist as exc:
            raise exceptions.NotFound() from exc
        return Response(CatalogItemSerializer(item).data)


# --- creator -------------------------------------------------------------------------------


class IsCreator(permissions.BasePermission):
    message = "This account is not a creator (POST /api/v1/creator/profile to become one)."

    def has_permission(self, request: Request, view: Any) -> bool:
        creator = selectors.creator_for_user(user=request_user(request))
        if creator is None:
            return False
        request.creator = creator  # type: ignore[attr-defined]
        return True


class CreatorAPIView(APIView):
    permission_classes = [permissions.IsAuthenticated, IsCreator]

    @property
    def creator(self) -> Creator:
        return self.request.creator  # type: ignore[attr-defined]

    def item(self, item_id: int) -> ContentItem:
        try:
            return selectors.creator_item_get(creator=self.creator, item_id=item_id)
        except ContentItem.DoesNotExist as exc:
            raise exceptions.NotFound() from exc


class CreatorProfileView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="creator_profile_retrieve",
        responses={200: CreatorSerializer, **CREATOR_ERRORS},
        tags=["creator"],
    )
    def get(self, request: Request) -> Response:
        """The caller's creator profile."""
        creator = selectors.creator_for_user(user=request_user(request))
        if creator is None:
            raise exceptions.PermissionDenied(IsCreator.message)
        return Response(CreatorSerializer(creator).data)

    @extend_schema(
        operation_id="creator_profile_create",
        request=CreatorCreateInput,
        responses={
            201: CreatorSerializer,
            400: _error("Invalid input; `error.fields` names the field."),
            409: _error("Already a creator (`conflict`)."),
            **TOKEN_ERRORS,
        },
        tags=["creator"],
    )
    def post(self, request: Request) -> Response:
        """Become a creator (the platform fee is the default; staff may change it), with how
        you are paid (`payout`) if you know it already."""
        data = CreatorCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            creator = payouts.creator_onboard(
                user=request_user(request),
                display_name=data.validated_data["display_name"],
                payout=data.validated_data.get("payout"),
            )
        except DjangoValidationError as exc:
            # The unique constraint on the creator's user decided: a state, not bad input.
            if "user" in getattr(exc, "message_dict", {}):
                raise Conflict("This account is already a creator.") from exc
            raise
        return Response(CreatorSerializer(creator).data, status=status.HTTP_201_CREATED)


class CreatorItemListView(CreatorAPIView):
    # The schema then documents the paginated envelope and `limit` / `offset`.
    pagination_class = LimitOffsetPagination

    @extend_schema(
        operation_id="creator_content_list",
        responses={200: CreatorItemSerializer(many=True), **CREATOR_ERRORS},
        tags=["creator"],
    )
    def get(self, request: Request) -> Response:
        """The caller's items, newest first (paginated with `limit` and `offset`)."""
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            selectors.creator_item_list(creator=self.creator), request, view=self
        )
        return paginator.get_paginated_response(CreatorItemSerializer(page, many=True).data)

    @extend_schema(
        operation_id="creator_content_create",
        request=ItemCreateInput,
        responses={201: CreatorItemSerializer, 400: INVALID, **CREATOR_ERRORS},
        tags=["creator"],
    )
    def post(self, request: Request) -> Response:
        """A new draft item, 100 % yours until you set shares."""
        data = ItemCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        item = services.content_item_create(owner=self.creator, **data.validated_data)
        body = CreatorItemSerializer(self.item(item.pk)).data
        return Response(body, status=status.HTTP_201_CREATED)


class CreatorItemDetailView(CreatorAPIView):
    @extend_schema(
        operation_id="creator_content_retrieve",
        responses={200: CreatorItemSerializer, 404: NOT_YOURS, **CREATOR_ERRORS},
        tags=["creator"],
    )
    def get(self, request: Request, item_id: int) -> Response:
        """One of your items, with its licence types and shares."""
        return Response(CreatorItemSerializer(self.item(item_id)).data)

    @extend_schema(
        operation_id="creator_content_update",
        request=ItemUpdateInput,
        responses={200: CreatorItemSerializer, 400: INVALID, 404: NOT_YOURS, **CREATOR_ERRORS},
        tags=["creator"],
    )
    def patch(self, request: Request, item_id: int) -> Response:
        """Edit an item, or publish / unpublish / archive it through `status`."""
        item = self.item(item_id)
        data = ItemUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.content_item_update(item=item, **data.validated_data)
        return Response(CreatorItemSerializer(self.item(item_id)).data)


class CreatorItemSharesView(CreatorAPIView):
    # A list of objects has no form encoding DRF can read: JSON only, and the schema says so
    # (schemathesis sent a schema-valid multipart body, refused as missing `shares`).
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="creator_content_shares_set",
        request=SharesInput,
        responses={
            200: ShareOutSerializer(many=True),
            400: _error(
                "Invalid shares (unknown creator, not exactly 100 %, without the owner); "
                "`error.fields.shares` says why."
            ),
            404: NOT_YOURS,
            **CREATOR_ERRORS,
        },
        tags=["creator"],
    )
    def put(self, request: Request, item_id: int) -> Response:
        """Replace the item's revenue shares: each creator once, the owner included, exactly
        100 % in total (e.g. 33.33 / 33.33 / 33.34)."""
        item = self.item(item_id)
        data = SharesInput(data=request.data)
        data.is_valid(raise_exception=True)
        rows = data.validated_data["shares"]
        creators = selectors.creators_by_id(ids=[row["creator"] for row in rows])
        unknown = sorted({row["creator"] for row in rows} - set(creators))
        if unknown:
            raise exceptions.ValidationError(
                {"shares": [f"Unknown creator {creator_id}." for creator_id in unknown]}
            )
        shares = services.content_shares_set(
            item=item, shares=[(creators[row["creator"]], row["percent"]) for row in rows]
        )
        body = [{"creator": share.creator, "percent": share.percent} for share in shares]
        return Response(ShareOutSerializer(body, many=True).data)


class CreatorLicenseTypeListView(CreatorAPIView):
    @extend_schema(
        operation_id="creator_license_types_create",
        request=LicenseTypeSerializer,
        responses={201: LicenseTypeSerializer, 400: INVALID, 404: NOT_YOURS, **CREATOR_ERRORS},
        tags=["creator"],
    )
    def post(self, request: Request, item_id: int) -> Response:
        """Offer a licence type for your item: a kind, a price (one-time, recurring or per
        use), a term, limits and an overage rule."""
        item = self.item(item_id)
        data = LicenseTypeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        license_type = services.license_type_create(item=item, **data.validated_data)
        return Response(LicenseTypeSerializer(license_type).data, status=status.HTTP_201_CREATED)


class CreatorLicenseTypeDetailView(CreatorAPIView):
    @extend_schema(
        operation_id="creator_license_types_update",
        request=LicenseTypeSerializer,
        responses={200: LicenseTypeSerializer, 400: INVALID, 404: NOT_YOURS, **CREATOR_ERRORS},
        tags=["creator"],
    )
    def patch(self, request: Request, item_id: int, license_type_id: int) -> Response:
        """Change a licence type (e.g. its price, or `is_active: false` to stop selling it);
        licences already sold keep their terms."""
        try:
            license_type = selectors.creator_license_type_get(
                creator=self.creator, item_id=item_id, license_type_id=license_type_id
            )
        except LicenseType.DoesNotExist as exc:
            raise exceptions.NotFound() from exc
        data = LicenseTypeSerializer(license_type, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        license_type = services.license_type_update(
            license_type=license_type, **data.validated_data
        )
        return Response(LicenseTypeSerializer(license_type).data)


__all__ = [
    "CatalogDetailView",
    "CatalogListView",
    "CreatorItemDetailView",
    "CreatorItemListView",
    "CreatorItemSharesView",
    "CreatorLicenseTypeDetailView",
    "CreatorLicenseTypeListView",
    "CreatorProfileView",
]
