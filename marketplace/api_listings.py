"""The public catalog of the services marketplace (/api/v1/marketplace/…, no authentication,
throttled per IP).

- `marketplace/categories/` — the categories;
- `marketplace/listings/` — published listings of active providers, newest first, with their
  packages; filter by `category` (id) or `category_slug`, `provider` (id), a price range
  (`price_min` / `price_max` in minor units, optionally in one `currency`: listings with a
  package in it) and `search` (title, description, provider name); paginated with `limit`
  and `offset`;
- `marketplace/listings/<id>/` — one of them; anything else (a draft, a paused listing,
  another's unknown id) is 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace import listing_selectors as selectors
from marketplace.api_provider import CategoryRefSerializer, PackageSerializer
from marketplace.models import Category, Listing, Provider
from revenue_site.api_fields import CurrencyField
from revenue_site.errors import ErrorSerializer


class ProviderRefSerializer(serializers.ModelSerializer[Provider]):
    class Meta:
        model = Provider
        fields = ["id", "display_name"]


class CategorySerializer(serializers.ModelSerializer[Category]):
    class Meta:
        model = Category
        fields = ["id", "name", "slug"]


class CatalogListingSerializer(serializers.ModelSerializer[Listing]):
    category = CategoryRefSerializer()
    provider = ProviderRefSerializer()
    packages = PackageSerializer(many=True)

    class Meta:
        model = Listing
        fields = ["id", "title", "description", "category", "provider", "published_at", "packages"]
        read_only_fields = fields


class CatalogFilterSerializer(serializers.Serializer[Any]):
    category = serializers.IntegerField(min_value=1, required=False, help_text="A category id.")
    category_slug = serializers.SlugField(required=False, help_text="A category's slug.")
    provider = serializers.IntegerField(min_value=1, required=False, help_text="A provider id.")
    price_min = serializers.IntegerField(
        min_value=0, required=False, help_text="Minor units: a package costs at least this."
    )
    price_max = serializers.IntegerField(
        min_value=0, required=False, help_text="Minor units: a package costs at most this."
    )
    currency = CurrencyField(required=False, help_text="ISO 4217: a package is priced in it.")
    search = serializers.CharField(
        required=False, max_length=200, help_text="Words in the title, description or provider."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        low, high = attrs.get("price_min"), attrs.get("price_max")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"price_max": ["At least price_min."]})
        return attrs


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


PUBLIC_ERRORS = {429: _error("Too many requests; retry after `Retry-After` seconds.")}


class CategoryListView(generics.ListAPIView[Category]):
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    serializer_class = CategorySerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[Category]:
        return selectors.category_list()

    @extend_schema(
        operation_id="marketplace_categories_list",
        responses={200: CategorySerializer(many=True), **PUBLIC_ERRORS},
        tags=["marketplace"],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Every category of service, by name."""
        return super().get(request, *args, **kwargs)


class CatalogListingListView(generics.ListAPIView[Listing]):
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    serializer_class = CatalogListingSerializer

    def get_queryset(self) -> QuerySet[Listing]:
        filters = CatalogFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        v = filters.validated_data
        return selectors.catalog_listing_list(
            category_id=v.get("category"),
            category_slug=v.get("category_slug"),
            provider_id=v.get("provider"),
            price_min=v.get("price_min"),
            price_max=v.get("price_max"),
            currency=v.get("currency"),
            search=v.get("search"),
        )

    @extend_schema(
        operation_id="marketplace_listings_list",
        parameters=[CatalogFilterSerializer],
        responses={
            200: CatalogListingSerializer(many=True),
            400: _error("Invalid filter; `error.fields` names it."),
            **PUBLIC_ERRORS,
        },
        tags=["marketplace"],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Published services, newest first, with their packages; filter by category,
        provider, price range and words; paginated with `limit` and `offset`."""
        return super().get(request, *args, **kwargs)


class CatalogListingDetailView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        operation_id="marketplace_listings_retrieve",
        responses={
            200: CatalogListingSerializer,
            404: _error("No published listing with this id."),
            **PUBLIC_ERRORS,
        },
        tags=["marketplace"],
    )
    def get(self, request: Request, listing_id: int) -> Response:
        """One published listing with its packages."""
        try:
            listing = selectors.catalog_listing_get(listing_id=listing_id)
        except Listing.DoesNotExist as exc:
            raise exceptions.NotFound() from exc
        return Response(CatalogListingSerializer(listing).data)
