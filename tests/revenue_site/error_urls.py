"""Test-only routes for the error-contract and request-id tests (`@pytest.mark.urls`)."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import include, path
from rest_framework import exceptions
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from revenue_site.errors import Conflict

logger = logging.getLogger("tests.request_id")


class DenyAll(BasePermission):
    message = "Staff only."

    def has_permission(self, request, view):
        return False


class ForbiddenView(APIView):
    permission_classes = [DenyAll]

    def get(self, request):
        return Response({})


class DjangoForbiddenView(APIView):
    def get(self, request):
        raise DjangoPermissionDenied


class NotFoundView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise exceptions.NotFound("No such widget.")


class DjangoValidationView(APIView):
    permission_classes = [AllowAny]

    def post(self, request):
        raise DjangoValidationError({"amount": ["Must be positive."]})


class ConflictView(APIView):
    permission_classes = [AllowAny]

    def post(self, request):
        raise Conflict("Already paid.")


class EchoView(APIView):
    permission_classes = [AllowAny]

    def post(self, request):
        return Response({"received": request.data})


class LoggingView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        logger.warning("inside the request")
        return Response({})


class BoomView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("a bug")


urlpatterns = [
    path("api/test/boom", BoomView.as_view()),
    path("api/test/forbidden", ForbiddenView.as_view()),
    path("api/test/django-forbidden", DjangoForbiddenView.as_view()),
    path("api/test/not-found", NotFoundView.as_view()),
    path("api/test/django-validation", DjangoValidationView.as_view()),
    path("api/test/conflict", ConflictView.as_view()),
    path("api/test/echo", EchoView.as_view()),
    path("api/test/log", LoggingView.as_view()),
    path("", include("revenue_site.urls")),
]

handler400 = "revenue_site.errors.bad_request"
handler403 = "revenue_site.errors.permission_denied"
handler404 = "revenue_site.errors.page_not_found"
handler500 = "revenue_site.errors.server_error"
