"""Account API: sign-up, token, current user. Parses input and calls accounts.services."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.throttles import AuthEmailThrottle, AuthIpThrottle, SignupThrottle
from revenue_site.errors import ErrorSerializer


class _PublicView(APIView):
    """No authentication (so no CSRF from a stray session cookie), open to anyone.

    A failed credential check must still answer 401, which DRF only does when the view
    names an authentication scheme for the WWW-Authenticate header.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        return "Token"


class SignupView(_PublicView):
    throttle_classes = [SignupThrottle]

    class SignupInputSerializer(serializers.Serializer):
        email = serializers.EmailField(max_length=254)
        # AUTH_PASSWORD_VALIDATORS, as far as a schema can say them (8 characters, not all
        # digits); a common password or one like the email is still refused with 400.
        password = serializers.CharField(
            min_length=8,
            max_length=128,
            trim_whitespace=False,
            validators=[RegexValidator(r"\D", message="This password is entirely numeric.")],
        )
        name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")

    class SignupOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        email = serializers.EmailField()
        token = serializers.CharField()

    @extend_schema(
        operation_id="accounts_signup",
        summary="Create an account and get an API token",
        request=SignupInputSerializer,
        responses={
            201: SignupOutputSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="Invalid input, weak password or email already registered",
            ),
            429: OpenApiResponse(ErrorSerializer, description="Too many sign-ups from this IP"),
        },
        auth=[],
        tags=["accounts"],
    )
    def post(self, request: Request) -> Response:
        serializer = self.SignupInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, token = services.user_signup(**serializer.validated_data)
        out = self.SignupOutputSerializer({"id": user.pk, "email": user.email, "token": token.key})
        return Response(out.data, status=status.HTTP_201_CREATED)


class TokenObtainView(_PublicView):
    throttle_classes = [AuthIpThrottle, AuthEmailThrottle]

    class TokenInputSerializer(serializers.Serializer):
        email = serializers.CharField(max_length=254)
        password = serializers.CharField(max_length=128, trim_whitespace=False)

    class TokenOutputSerializer(serializers.Serializer):
        token = serializers.CharField()

    @extend_schema(
        operation_id="auth_token_obtain",
        summary="Exchange email and password for an API token",
        description="Send the token as `Authorization: Token <token>`.",
        request=TokenInputSerializer,
        responses={
            200: TokenOutputSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Missing fields"),
            401: OpenApiResponse(ErrorSerializer, description="Invalid credentials"),
            429: OpenApiResponse(ErrorSerializer, description="Too many attempts"),
        },
        auth=[],
        tags=["accounts"],
    )
    def post(self, request: Request) -> Response:
        serializer = self.TokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token = services.auth_token_obtain(
                request=request._request, **serializer.validated_data
            )
        except services.InvalidCredentials:
            raise exceptions.AuthenticationFailed("Invalid email or password.") from None
        return Response(self.TokenOutputSerializer({"token": token.key}).data)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    class MeOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        email = serializers.EmailField()
        name = serializers.CharField()
        is_staff = serializers.BooleanField()
        date_joined = serializers.DateTimeField()

    @extend_schema(
        operation_id="accounts_me",
        summary="The authenticated user",
        responses={
            200: MeOutputSerializer,
            401: OpenApiResponse(ErrorSerializer, description="Missing or invalid token"),
        },
        tags=["accounts"],
    )
    def get(self, request: Request) -> Response:
        return Response(self.MeOutputSerializer(request.user).data)
