"""Provider endpoints of the services marketplace (/api/v1/provider/…, the account token).

- `provider/profile` — become a provider (POST), read (GET) or rename (PATCH) yourself;
- `provider/onboarding` — how you are paid and whether that is complete; `…/connect` gives a
  Stripe-hosted onboarding link (Express account created on first use), `…/refresh` reads the
  account from Stripe now, `…/bank` sets bank details for bank-transfer (CSV) payouts;
- `provider/listings/` — your listings with their packages (nested, set as a whole), and the
  steps `submit`, `withdraw`, `pause`, `resume`.

A signed-in user who is not a provider gets 403; another provider's listing ids 404. A step the
listing's status does not allow, or one that needs payout onboarding first, is 409 with a code
(`invalid_state` with the current `status`, `onboarding_incomplete`, `provider_suspended`,
`paused_by_staff`, `package_has_orders`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import request_user
from ledger.models import PayeeProfile
from ledger.payees import PayeeOnboardingError
from marketplace import listing_selectors as selectors
from marketplace import listings, providers
from marketplace.listings import ListingStateError, PackageInput
from marketplace.models import Category, Listing, ListingPackage, Provider
from marketplace.providers import ProviderError
from revenue_site.api_fields import CurrencyField
from revenue_site.errors import ErrorSerializer, error_body
from revenue_site.pagination import LimitOffsetPagination
from revenue_site.redirects import RedirectURLField

# --- serializers ---------------------------------------------------------------------------


class PackageSerializer(serializers.ModelSerializer[ListingPackage]):
    price = serializers.IntegerField(
        min_value=0, max_value=listings.PACKAGE_PRICE_MAX, help_text="Minor units of `currency`."
    )
    currency = CurrencyField()
    delivery_days = serializers.IntegerField(min_value=1, max_value=listings.DELIVERY_DAYS_MAX)
    revisions = serializers.IntegerField(
        min_value=0, max_value=listings.REVISIONS_MAX, required=False, default=0
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")

    class Meta:
        model = ListingPackage
        fields = [
            "id",
            "tier",
            "name",
            "description",
            "price",
            "currency",
            "delivery_days",
            "revisions",
        ]
        read_only_fields = ["id"]


class CategoryRefSerializer(serializers.ModelSerializer[Category]):
    class Meta:
        model = Category
        fields = ["id", "name", "slug"]


class ProviderListingSerializer(serializers.ModelSerializer[Listing]):
    """A listing as its provider sees it."""

    category = CategoryRefSerializer()
    packages = PackageSerializer(many=True)

    class Meta:
        model = Listing
        fields = [
            "id",
            "title",
            "description",
            "category",
            "status",
            "moderation_reason",
            "paused_by_staff",
            "submitted_at",
            "published_at",
            "created_at",
            "updated_at",
            "packages",
        ]
        read_only_fields = fields


class PackageInputSerializer(PackageSerializer):
    """A package as sent: its own schema component, so the request's constraints (text that
    is not blank) are stated; sharing the answer's component left them out (schemathesis
    sent a blank `name`, refused with 400)."""

    class Meta(PackageSerializer.Meta):
        pass


class ListingInput(serializers.Serializer[Any]):
    category = serializers.IntegerField(min_value=1, help_text="A category's id.")
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    packages = PackageInputSerializer(  # type: ignore[call-arg]  # max_length: not in the stubs
        many=True,
        required=False,
        max_length=len(ListingPackage.Tier),
        help_text="One per tier, all in one currency.",
    )

    def validate_category(self, value: int) -> Category:
        try:
            return selectors.category_get(category_id=value)
        except Category.DoesNotExist as exc:
            raise serializers.ValidationError("Unknown category.") from exc


class ListingUpdateInput(ListingInput):
    category = serializers.IntegerField(min_value=1, required=False, help_text="A category's id.")
    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    packages = PackageInputSerializer(  # type: ignore[call-arg]  # max_length: not in the stubs
        many=True,
        required=False,
        max_length=len(ListingPackage.Tier),
        help_text="Replaces every package: one per tier, all in one currency; a tier left out "
        "is removed.",
    )


class ListingFilterSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=Listing.Status.choices, required=False)


def _packages(rows: list[dict[str, Any]] | None) -> list[PackageInput] | None:
    if rows is None:
        return None
    return [
        PackageInput(
            tier=row["tier"],
            name=row["name"],
            description=row.get("description", ""),
            price=row["price"],
            currency=row["currency"],
            delivery_days=row["delivery_days"],
            revisions=row.get("revisions", 0),
        )
        for row in rows
    ]


class ProviderSerializer(serializers.ModelSerializer[Provider]):
    status = serializers.CharField(read_only=True, help_text="active or suspended.")

    class Meta:
        model = Provider
        fields = ["id", "display_name", "status", "commission_percent_override", "created_at"]
        read_only_fields = fields


class ProviderInput(serializers.Serializer[Any]):
    display_name = serializers.CharField(max_length=100)


class OnboardingSerializer(serializers.Serializer[Any]):
    method = serializers.CharField(
        help_text="stripe_connect, bank_csv, paypal, or empty (not set up)."
    )
    onboarding_complete = serializers.BooleanField(
        help_text="You can be paid, so you may submit and publish listings."
    )
    stripe_account_id = serializers.CharField(allow_blank=True)
    charges_enabled = serializers.BooleanField()
    payouts_enabled = serializers.BooleanField()
    details_submitted = serializers.BooleanField()
    bank_account_name = serializers.CharField(allow_blank=True)
    bank_iban_last4 = serializers.CharField(allow_blank=True)


def _onboarding(profile: PayeeProfile | None) -> dict[str, Any]:
    profile = profile or PayeeProfile()
    return {
        "method": profile.method,
        "onboarding_complete": profile.onboarding_complete,
        "stripe_account_id": profile.stripe_account_id,
        "charges_enabled": profile.stripe_charges_enabled,
        "payouts_enabled": profile.stripe_payouts_enabled,
        "details_submitted": profile.stripe_details_submitted,
        "bank_account_name": profile.bank_account_name,
        "bank_iban_last4": profile.bank_iban[-4:],
    }


class ConnectInput(serializers.Serializer[Any]):
    # Stripe's hosted page sends the browser here: this site or an allowed origin only.
    return_url = RedirectURLField(
        required=False,
        max_length=2000,
        help_text="Where Stripe sends you back after onboarding (default: the site); this "
        "site or an origin in CORS_ALLOWED_ORIGINS.",
    )
    refresh_url = RedirectURLField(
        required=False,
        max_length=2000,
        help_text="Where Stripe sends you when the link expired or was used: ask for a new "
        "one there (default: the site); this site or an origin in CORS_ALLOWED_ORIGINS.",
    )
    country = serializers.RegexField(
        r"^[A-Za-z]{2}$",
        required=False,
        default="US",
        min_length=2,
        max_length=2,
        trim_whitespace=False,
        help_text="Your country (ISO 3166-1 alpha-2); fixed once the account exists.",
    )


class OnboardingLinkSerializer(serializers.Serializer[Any]):
    url = serializers.URLField(help_text="Single-use; send the provider there now.")
    expires_at = serializers.DateTimeField()


class BankInput(serializers.Serializer[Any]):
    account_name = serializers.CharField(max_length=200, help_text="The account holder.")
    iban = serializers.CharField(max_length=50)
    bic = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")


# --- errors in the schema ------------------------------------------------------------------


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


TOKEN_ERRORS = {
    401: _error("Not authenticated (send the account token: `Authorization: Token …`)."),
    429: _error("Too many requests; retry after `Retry-After` seconds."),
}
PROVIDER_ERRORS = {**TOKEN_ERRORS, 403: _error("This account is not a provider.")}
INVALID = _error("Invalid input; `error.fields` names the field.")
NOT_YOURS = _error("Not found (or another provider's).")
CONFLICT = _error(
    "Not in this state: `error.code` is `invalid_state` (with the listing's `status`), "
    "`onboarding_incomplete` (complete payout onboarding first), `provider_suspended`, "
    "`paused_by_staff` or `package_has_orders`."
)
STRIPE_ERRORS = {
    400: _error("Invalid input, or Stripe refused it; `error.fields` names the field."),
    503: _error("Stripe is unavailable; retry after `Retry-After` seconds."),
}


def _conflict(exc: ProviderError | PayeeOnboardingError) -> Response:
    body = error_body(exc.code, exc.message)
    if isinstance(exc, ListingStateError):
        body["error"]["status"] = exc.status
    return Response(body, status=status.HTTP_409_CONFLICT)


# --- views ---------------------------------------------------------------------------------


class IsProvider(permissions.BasePermission):
    message = "This account is not a provider (POST /api/v1/provider/profile to become one)."

    def has_permission(self, request: Request, view: Any) -> bool:
        provider = selectors.provider_for_user(user=request_user(request))
        if provider is None:
            return False
        request.provider = provider  # type: ignore[attr-defined]
        return True


class ProviderAPIView(APIView):
    permission_classes = [permissions.IsAuthenticated, IsProvider]

    @property
    def provider(self) -> Provider:
        return self.request.provider  # type: ignore[attr-defined]

    def listing(self, listing_id: int) -> Listing:
        try:
            return selectors.provider_listing_get(provider=self.provider, listing_id=listing_id)
        except Listing.DoesNotExist as exc:
            raise exceptions.NotFound() from exc

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ProviderError | PayeeOnboardingError):
            return _conflict(exc)
        return super().handle_exception(exc)


class ProviderProfileView(ProviderAPIView):
    def get_permissions(self) -> Sequence[Any]:
        if self.request.method == "POST":
            return [permissions.IsAuthenticated()]
        return super().get_permissions()

    @extend_schema(
        operation_id="provider_profile_retrieve",
        responses={200: ProviderSerializer, **PROVIDER_ERRORS},
        tags=["provider"],
    )
    def get(self, request: Request) -> Response:
        """Your provider profile."""
        return Response(ProviderSerializer(self.provider).data)

    @extend_schema(
        operation_id="provider_profile_create",
        request=ProviderInput,
        responses={
            201: ProviderSerializer,
            400: INVALID,
            409: _error("Already a provider (`already_provider`)."),
            **TOKEN_ERRORS,
        },
        tags=["provider"],
    )
    def post(self, request: Request) -> Response:
        """Become a provider. Then set up payouts (`provider/onboarding/connect` or
        `provider/onboarding/bank`) before submitting listings."""
        data = ProviderInput(data=request.data)
        data.is_valid(raise_exception=True)
        provider = providers.provider_create(
            user=request_user(request), display_name=data.validated_data["display_name"]
        )
        return Response(ProviderSerializer(provider).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="provider_profile_update",
        request=ProviderInput,
        responses={200: ProviderSerializer, 400: INVALID, **PROVIDER_ERRORS},
        tags=["provider"],
    )
    def patch(self, request: Request) -> Response:
        """Change your display name (a body without it changes nothing)."""
        data = ProviderInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if "display_name" not in data.validated_data:
            return Response(ProviderSerializer(self.provider).data)
        provider = providers.provider_update(
            provider=self.provider, display_name=data.validated_data["display_name"]
        )
        return Response(ProviderSerializer(provider).data)


class OnboardingView(ProviderAPIView):
    @extend_schema(
        operation_id="provider_onboarding_retrieve",
        responses={200: OnboardingSerializer, **PROVIDER_ERRORS},
        tags=["provider"],
    )
    def get(self, request: Request) -> Response:
        """How you are paid, and whether onboarding is complete (Stripe Connect: payouts
        enabled on your account; bank transfer: account holder and IBAN set)."""
        profile = providers.provider_payee_profile(provider=self.provider)
        return Response(OnboardingSerializer(_onboarding(profile)).data)


class OnboardingConnectView(ProviderAPIView):
    @extend_schema(
        operation_id="provider_onboarding_connect",
        request=ConnectInput,
        responses={
            201: OnboardingLinkSerializer,
            **STRIPE_ERRORS,
            409: _error("The provider is suspended (`provider_suspended`)."),
            **PROVIDER_ERRORS,
        },
        tags=["provider"],
    )
    def post(self, request: Request) -> Response:
        """A Stripe-hosted onboarding link (Stripe Connect Express): your payouts go through
        Stripe from now on. The account is created on the first call; each call gives a new
        single-use link. When Stripe has what it needs it enables payouts and tells us
        (`account.updated`); `onboarding_complete` becomes true. An `Idempotency-Key` header
        makes a retried request return the same link."""
        data = ConnectInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        v = data.validated_data
        link = providers.provider_connect_onboarding_start(
            provider=self.provider,
            return_url=v.get("return_url") or settings.SITE_URL + "/",
            refresh_url=v.get("refresh_url") or settings.SITE_URL + "/",
            country=v["country"],
            request_key=request.headers.get("Idempotency-Key"),
        )
        return Response(OnboardingLinkSerializer(link).data, status=status.HTTP_201_CREATED)


class OnboardingRefreshView(ProviderAPIView):
    @extend_schema(
        operation_id="provider_onboarding_refresh",
        request=None,
        responses={
            200: OnboardingSerializer,
            503: STRIPE_ERRORS[503],
            **PROVIDER_ERRORS,
        },
        tags=["provider"],
    )
    def post(self, request: Request) -> Response:
        """Read your Stripe account now (back from onboarding before Stripe told us)."""
        profile = providers.provider_connect_refresh(provider=self.provider)
        return Response(OnboardingSerializer(_onboarding(profile)).data)


class OnboardingBankView(ProviderAPIView):
    @extend_schema(
        operation_id="provider_onboarding_bank",
        request=BankInput,
        responses={
            200: OnboardingSerializer,
            400: INVALID,
            409: _error("The provider is suspended (`provider_suspended`)."),
            **PROVIDER_ERRORS,
        },
        tags=["provider"],
    )
    def put(self, request: Request) -> Response:
        """Be paid by bank transfer (the payout batches' CSV export) to this account instead
        of Stripe Connect. Onboarding is complete once the holder and a valid IBAN are set."""
        data = BankInput(data=request.data)
        data.is_valid(raise_exception=True)
        profile = providers.provider_bank_details_set(provider=self.provider, **data.validated_data)
        return Response(OnboardingSerializer(_onboarding(profile)).data)


# A listing's packages are a list of objects, which form encodings cannot carry: a form
# post silently created a listing without them (schemathesis), so these take JSON only and
# the schema offers no form encoding.
_LISTING_PARSERS = [JSONParser]


class ProviderListingListView(ProviderAPIView):
    # The schema then documents the paginated envelope and `limit` / `offset`.
    pagination_class = LimitOffsetPagination
    parser_classes = _LISTING_PARSERS

    @extend_schema(
        operation_id="provider_listings_list",
        parameters=[ListingFilterSerializer],
        responses={200: ProviderListingSerializer(many=True), 400: INVALID, **PROVIDER_ERRORS},
        tags=["provider"],
    )
    def get(self, request: Request) -> Response:
        """Your listings, newest first, with their packages; filter by `status`; paginated
        with `limit` and `offset`."""
        filters = ListingFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            selectors.provider_listing_list(
                provider=self.provider, status=filters.validated_data.get("status")
            ),
            request,
            view=self,
        )
        return paginator.get_paginated_response(ProviderListingSerializer(page, many=True).data)

    @extend_schema(
        operation_id="provider_listings_create",
        request=ListingInput,
        responses={
            201: ProviderListingSerializer,
            400: INVALID,
            409: _error("The provider is suspended (`provider_suspended`)."),
            **PROVIDER_ERRORS,
        },
        tags=["provider"],
    )
    def post(self, request: Request) -> Response:
        """A new draft listing with its packages (basic / standard / premium: a price in
        minor units, a currency, delivery days and revisions)."""
        data = ListingInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        listing = listings.listing_create(
            provider=self.provider,
            category=v["category"],
            title=v["title"],
            description=v["description"],
            packages=_packages(v.get("packages")) or (),
        )
        body = ProviderListingSerializer(self.listing(listing.pk)).data
        return Response(body, status=status.HTTP_201_CREATED)


class ProviderListingDetailView(ProviderAPIView):
    parser_classes = _LISTING_PARSERS

    @extend_schema(
        operation_id="provider_listings_retrieve",
        responses={200: ProviderListingSerializer, 404: NOT_YOURS, **PROVIDER_ERRORS},
        tags=["provider"],
    )
    def get(self, request: Request, listing_id: int) -> Response:
        """One of your listings with its packages."""
        return Response(ProviderListingSerializer(self.listing(listing_id)).data)

    @extend_schema(
        operation_id="provider_listings_update",
        request=ListingUpdateInput,
        responses={
            200: ProviderListingSerializer,
            400: INVALID,
            404: NOT_YOURS,
            409: CONFLICT,
            **PROVIDER_ERRORS,
        },
        tags=["provider"],
    )
    def patch(self, request: Request, listing_id: int) -> Response:
        """Edit a listing; `packages` replaces them all. Editing a published or paused listing
        sends it back to review (so payout onboarding must be complete)."""
        listing = self.listing(listing_id)
        data = ListingUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        listings.listing_update(
            listing=listing,
            title=v.get("title"),
            description=v.get("description"),
            category=v.get("category"),
            packages=_packages(v.get("packages")),
        )
        return Response(ProviderListingSerializer(self.listing(listing_id)).data)

    @extend_schema(
        operation_id="provider_listings_delete",
        responses={204: None, 404: NOT_YOURS, 409: CONFLICT, **PROVIDER_ERRORS},
        tags=["provider"],
    )
    def delete(self, request: Request, listing_id: int) -> Response:
        """Delete a draft listing (one that is or was on sale: pause it instead)."""
        listings.listing_delete(listing=self.listing(listing_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


_STEPS = {
    "submit": (
        listings.listing_submit,
        "Send a draft for review. Needs payout onboarding complete and at least one package.",
    ),
    "withdraw": (listings.listing_withdraw, "Take a listing pending review back to draft."),
    "pause": (listings.listing_pause, "Take a published listing off the catalog for now."),
    "resume": (
        listings.listing_resume,
        "Put a listing you paused back on the catalog (not one staff paused).",
    ),
}


class ProviderListingStepView(ProviderAPIView):
    step = ""

    def run(self, listing_id: int) -> Response:
        service, _ = _STEPS[self.step]
        service(listing=self.listing(listing_id))
        return Response(ProviderListingSerializer(self.listing(listing_id)).data)


def _step_view(step: str) -> type[ProviderListingStepView]:
    _, description = _STEPS[step]

    def post(self: ProviderListingStepView, request: Request, listing_id: int) -> Response:
        return self.run(listing_id)

    post.__doc__ = description
    responses: dict[int, Any] = {200: ProviderListingSerializer}
    if step == "submit":
        responses[400] = _error("The listing has no package yet (`error.fields.packages`).")
    schema = extend_schema(
        operation_id=f"provider_listings_{step}",
        request=None,
        responses={**responses, 404: NOT_YOURS, 409: CONFLICT, **PROVIDER_ERRORS},
        tags=["provider"],
    )
    return type(
        f"ProviderListing{step.capitalize()}View",
        (ProviderListingStepView,),
        {"step": step, "post": schema(post)},
    )


ListingSubmitView = _step_view("submit")
ListingWithdrawView = _step_view("withdraw")
ListingPauseView = _step_view("pause")
ListingResumeView = _step_view("resume")
