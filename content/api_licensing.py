"""Licence endpoints (/api/v1/).

- `content/licenses/verify?key=…` — public, throttled per IP (`license_verify`): what a key is
  worth now. Every unusable key answers the same `unknown`. Served by `license_verify_view`, a
  plain Django view (see there why); `LicenseVerifyView` is its documented DRF twin.
- `content/usage` — the buyer's software reports use; the licence key is the credential
  (throttled per IP, `license_usage`).
- `creator/licenses/` — licences sold for the calling creator's own items (read-only).

Views parse input and call `content.licensing`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from content import licensing
from content.api import CREATOR_ERRORS, NOT_YOURS, PUBLIC_ERRORS, CreatorAPIView, _error
from content.models import License, LicenseUsage
from revenue_site.errors import error_body, error_response
from revenue_site.pagination import LimitOffsetPagination
from revenue_site.throttling import FailureLimit, LocalPerIpRateThrottle, PerIpRateThrottle


class LicenseVerifyThrottle(LocalPerIpRateThrottle):
    """Every verification, per address, counted by each worker on its own: a capacity guard
    that costs no round trip on the API's hottest read (a shared count cost a tenth of its
    throughput). The shared limit is on failed ones (``failed_verification``)."""

    scope = "license_verify"


class LicenseVerifyFailedThrottle(PerIpRateThrottle):
    """Verifications of unknown keys per address, counted in the shared cache (every worker):
    the limit on guessing keys, as a login throttle counts failed logins."""

    scope = "license_verify_failed"


# Guessing keys: a shared limit on unknown keys per address, then every key refused.
guessing = FailureLimit(LicenseVerifyFailedThrottle)


def verification_refused(request: HttpRequest | Request) -> exceptions.Throttled | None:
    """Throttled when this address is over the verification rate (this worker's count) or
    blocked for guessing; else None. ``request``: Django's or DRF's (reads ``META``)."""
    throttle = LicenseVerifyThrottle()
    if not throttle.allow_request(request, None):  # type: ignore[arg-type]  # reads META only
        return exceptions.Throttled(throttle.wait())
    return guessing.refused(request)


def failed_verification(request: HttpRequest | Request) -> exceptions.Throttled | None:
    """Count a verification of an unknown key against the address's shared limit; Throttled
    (and the address blocked in this worker) when that goes over it."""
    return guessing.failed(request)


class LicenseUsageThrottle(PerIpRateThrottle):
    scope = "license_usage"


# --- serializers ---------------------------------------------------------------------------

_LIMITS_HELP = "Units left within each limit (overage not included); unlimited ones absent."

VerifySerializer = inline_serializer(
    name="LicenseVerification",
    fields={
        "status": serializers.ChoiceField(choices=licensing.VerifyStatus.ALL),
        "code": serializers.CharField(
            help_text="VALID, EXPIRED, REVOKED, SUSPENDED, USAGE_EXCEEDED or NOT_FOUND."
        ),
        "content": inline_serializer(
            name="LicensedContent",
            fields={"id": serializers.IntegerField(), "title": serializers.CharField()},
            allow_null=True,
        ),
        "holder": serializers.CharField(allow_null=True, help_text="The masked e-mail."),
        "limits_remaining": serializers.DictField(
            child=serializers.IntegerField(), allow_null=True, help_text=_LIMITS_HELP
        ),
        "expires_at": serializers.DateTimeField(allow_null=True),
    },
)


class UsageInput(serializers.Serializer[Any]):
    license_key = serializers.CharField(trim_whitespace=False)
    event = serializers.ChoiceField(choices=LicenseUsage.Event.choices)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)
    id = serializers.CharField(
        max_length=255, help_text="Your id for this report: a repeat is answered, not counted."
    )


UsageOutSerializer = inline_serializer(
    name="LicenseUsageAccepted",
    fields={
        "id": serializers.CharField(),
        "event": serializers.CharField(),
        "quantity": serializers.IntegerField(),
        "duplicate": serializers.BooleanField(),
        "limits_remaining": serializers.DictField(
            child=serializers.IntegerField(), help_text=_LIMITS_HELP
        ),
        "overage": serializers.IntegerField(
            help_text="Units of this event used above its limit (billed later at the per-use rate)."
        ),
    },
)


class CreatorLicenseSerializer(serializers.ModelSerializer[License]):
    content = serializers.SerializerMethodField()
    license_type = serializers.SerializerMethodField()
    holder = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()

    class Meta:
        model = License
        fields = [
            "id",
            "key_prefix",
            "content",
            "license_type",
            "status",
            "issued_at",
            "expires_at",
            "holder",
        ]
        read_only_fields = fields

    def get_content(self, obj: License) -> dict[str, Any]:
        return {"id": obj.content_id, "title": obj.content.title}

    def get_license_type(self, obj: License) -> dict[str, Any]:
        return {"id": obj.license_type_id, "kind": obj.license_type.kind}

    def get_holder(self, obj: License) -> str:
        return licensing.mask_email(obj.holder.email)

    def get_status(self, obj: License) -> str:
        """The stored status, or `expired` once `expires_at` has passed."""
        state = licensing.license_state(license=obj)
        return License.Status.EXPIRED if state == licensing.VerifyStatus.EXPIRED else obj.status


# --- views ---------------------------------------------------------------------------------


class LicenseVerifyView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    throttle_classes: list[Any] = []  # verification_refused: the same limits as the view

    @extend_schema(
        operation_id="content_license_verify",
        parameters=[
            OpenApiParameter(
                "key",
                {"type": "string", "minLength": 1},  # empty is "missing": 400
                required=True,
                description="The licence key.",
            )
        ],
        responses={200: VerifySerializer, 400: _error("`key` is missing."), **PUBLIC_ERRORS},
        tags=["content"],
    )
    def get(self, request: Request) -> Response:
        """What a licence key is worth now: `valid`, `expired`, `revoked`, `suspended`,
        `over_limit` (a limit's allowance is used up) or `unknown` (any key we cannot use)."""
        refused = verification_refused(request)
        if refused is not None:
            raise refused
        key = request.query_params.get("key")
        if not key:
            raise exceptions.ValidationError({"key": [_KEY_MISSING]})
        result = licensing.license_verify(key=key)
        if result.status == licensing.VerifyStatus.UNKNOWN:
            refused = failed_verification(request)
            if refused is not None:
                raise refused
        return Response(result.as_dict())


_KEY_MISSING = "Send the licence key as ?key=…."
_VERIFY_METHODS = ("GET", "HEAD")
_RENDERER = JSONRenderer()


@csrf_exempt  # a read; nothing to forge
def license_verify_view(request: HttpRequest) -> HttpResponse:
    """`GET /api/v1/content/licenses/verify`: LicenseVerifyView's answers, without DRF's
    request cycle.

    The buyer's software calls it on every use, so it is the API's hottest read. Measured in
    process (CPU per request, bench settings, PostgreSQL + Redis), DRF's dispatch around the
    same lookup (request wrapping, content negotiation, the throttle machinery, the renderer's
    response) was a third of its cost over a constant-JSON view. Here the same throttle class
    counts the request, errors come from the API's exception handler (same bodies and
    headers), and the body from DRF's JSON renderer; tests/content/test_licensing.py asks both
    views the same questions and compares the answers. The schema documents LicenseVerifyView
    (urls.py hands drf-spectacular that class through ``documented_by``).
    """
    if request.method not in _VERIFY_METHODS:
        response = error_response(exceptions.MethodNotAllowed(request.method or ""))
        response["Allow"] = ", ".join(_VERIFY_METHODS)
        return response
    refused = verification_refused(request)
    if refused is not None:
        return error_response(refused)
    key = request.GET.get("key")
    if not key:
        return error_response(exceptions.ValidationError({"key": [_KEY_MISSING]}))
    result = licensing.license_verify(key=key)
    if result.status == licensing.VerifyStatus.UNKNOWN:
        refused = failed_verification(request)
        if refused is not None:
            return error_response(refused)
    body = _RENDERER.render(result.as_dict())
    response = HttpResponse(body, content_type="application/json")
    response["Vary"] = "Accept"
    return response


class LicenseUsageView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]  # the licence key is the credential
    throttle_classes = [LicenseUsageThrottle]

    @extend_schema(
        operation_id="content_license_usage_create",
        request=UsageInput,
        responses={
            202: UsageOutSerializer,
            400: _error("Invalid input; `error.fields` names the field."),
            403: _error(
                "Refused: `error.code` is the licence's verification status (`unknown`, "
                "`expired`, `revoked`, `suspended`), or `over_limit` with `remaining: 0` "
                "(the attempt is recorded as denied)."
            ),
            **PUBLIC_ERRORS,
        },
        tags=["content"],
    )
    def post(self, request: Request) -> Response:
        """Report uses of a licence (`view`, `download`, `api_call`), idempotent on `id`."""
        data = UsageInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            result = licensing.license_usage_record(
                key=v["license_key"], event=v["event"], quantity=v["quantity"], event_id=v["id"]
            )
        except licensing.LicenseNotUsable as exc:
            body = error_body(exc.status, f"This licence cannot be used ({exc.code}).")
            body.update(status=exc.status, code=exc.code)
            return Response(body, status=status.HTTP_403_FORBIDDEN)
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(exc.message_dict) from exc
        if not result.accepted:
            body = error_body(
                licensing.VerifyStatus.OVER_LIMIT,
                f"The {v['event']} limit is reached; the attempt is recorded as denied.",
            )
            body.update(
                id=v["id"],
                remaining=0,
                limits_remaining=result.limits_remaining,
                duplicate=result.duplicate,
            )
            return Response(body, status=status.HTTP_403_FORBIDDEN)
        return Response(
            {
                "id": result.usage.event_id,
                "event": result.usage.event,
                "quantity": result.usage.quantity,
                "duplicate": result.duplicate,
                "limits_remaining": result.limits_remaining,
                "overage": result.overage,
            },
            status=status.HTTP_202_ACCEPTED,
        )


class CreatorLicenseListView(CreatorAPIView):
    # The schema then documents the paginated envelope and `limit` / `offset`.
    pagination_class = LimitOffsetPagination

    @extend_schema(
        operation_id="creator_licenses_list",
        responses={200: CreatorLicenseSerializer(many=True), **CREATOR_ERRORS},
        tags=["creator"],
    )
    def get(self, request: Request) -> Response:
        """Licences sold for your items, newest first (paginated with `limit` and `offset`);
        holders' e-mails are masked."""
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            licensing.creator_license_list(creator=self.creator), request, view=self
        )
        return paginator.get_paginated_response(CreatorLicenseSerializer(page, many=True).data)


class CreatorLicenseDetailView(CreatorAPIView):
    @extend_schema(
        operation_id="creator_licenses_retrieve",
        responses={200: CreatorLicenseSerializer, 404: NOT_YOURS, **CREATOR_ERRORS},
        tags=["creator"],
    )
    def get(self, request: Request, license_id: int) -> Response:
        """One licence sold for your items."""
        try:
            license = licensing.creator_license_get(creator=self.creator, license_id=license_id)
        except License.DoesNotExist as exc:
            raise exceptions.NotFound() from exc
        return Response(CreatorLicenseSerializer(license).data)


__all__ = [
    "CreatorLicenseDetailView",
    "CreatorLicenseListView",
    "LicenseUsageView",
    "LicenseVerifyView",
]
