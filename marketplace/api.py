"""API billing endpoints (/api/v1/).

- `api-keys/` (a customer's account token or session): create, list, revoke its own keys.
- `usage/events`, `usage/events/<id>`, `usage/summary` (`Authorization: Bearer <api key>`, per-key
  rate limit): report usage, confirm a stored event, read aggregated usage.

Views parse input and call services (writes) or selectors (reads, scoped to the caller: another
customer's key or event is a 404).
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import request_user
from marketplace import selectors, services
from marketplace.auth import ApiKeyAuthentication, ApiKeyRateThrottle, HasApiKeyScope
from marketplace.models import SCOPE_USAGE_READ, SCOPE_USAGE_WRITE, SCOPES, ApiKey, month_bounds
from revenue_site.errors import ErrorSerializer, Unprocessable, error_body

MAX_BODY_BYTES = 1_000_000

# --- serializers ---------------------------------------------------------------------------


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "created_at",
        ]


class ApiKeyCreatedSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    key = serializers.CharField(help_text="The full key: shown this once, never again.")
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class ApiKeyCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=SCOPES),
        required=False,
        allow_empty=False,
        min_length=1,
        help_text="Default: both usage:write and usage:read.",
    )

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value


class UsageEventInput(serializers.Serializer[Any]):
    """For the schema only: the view validates the batch itself (errors by index, 422)."""

    id = serializers.CharField(max_length=255, help_text="Your idempotency key for the event.")
    metric = serializers.CharField(help_text="A meter's code, e.g. api_calls.")
    quantity = serializers.DecimalField(
        max_digits=15, decimal_places=6, min_value=Decimal(0), coerce_to_string=False
    )
    timestamp = serializers.DateTimeField(help_text="At most 35 days ago, 5 minutes ahead.")
    properties = serializers.DictField(required=False)


class UsageBatchInput(serializers.Serializer[Any]):
    # (DRF's ListSerializer takes min_length/max_length; djangorestframework-stubs lacks them)
    events = UsageEventInput(  # type: ignore[call-arg]
        many=True, min_length=1, max_length=1000, help_text="1 to 1,000 events."
    )


class UsageAcceptedSerializer(serializers.Serializer[Any]):
    accepted = serializers.IntegerField(help_text="Events stored by this request.")
    duplicates = serializers.IntegerField(
        help_text="Events whose id was already stored (or repeated in this batch): not stored "
        "again, not counted again."
    )


class PeriodSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class UsageEventSerializer(serializers.Serializer[Any]):
    id = serializers.CharField(source="event.event_id")
    metric = serializers.CharField(source="event.meter.code")
    quantity = serializers.DecimalField(source="event.quantity", max_digits=15, decimal_places=6)
    timestamp = serializers.DateTimeField(source="event.timestamp")
    properties = serializers.DictField(source="event.properties")
    received_at = serializers.DateTimeField(source="event.received_at")
    period = serializers.SerializerMethodField()

    @extend_schema_field(PeriodSerializer)
    def get_period(self, obj: selectors.StoredEvent) -> dict[str, Any]:
        return PeriodSerializer({"start": obj.period_start, "end": obj.period_end}).data


class UsageSummaryInput(serializers.Serializer[Any]):
    metric = serializers.CharField()
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    group_by = serializers.ChoiceField(choices=["day", "hour"], default="day")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        default_start, default_end = month_bounds(timezone.now())
        attrs.setdefault("start", default_start)
        attrs.setdefault("end", default_end)
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": ["Must be after start."]})
        if attrs["end"] - attrs["start"] > timedelta(days=366):
            raise serializers.ValidationError({"end": ["At most 366 days after start."]})
        return attrs


class UsageBucketSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    value = serializers.DecimalField(max_digits=30, decimal_places=6)


class ChargeLineSerializer(serializers.Serializer[Any]):
    quantity = serializers.DecimalField(
        max_digits=30, decimal_places=6, help_text="Units priced (packages for a package price)."
    )
    unit_amount = serializers.CharField(help_text='Minor units per unit, exact (e.g. "0.1").')
    flat_amount = serializers.CharField(help_text="Minor units, exact.")
    amount = serializers.IntegerField(help_text="Minor units; the lines add up to the charge.")
    tier = serializers.IntegerField(allow_null=True)
    up_to = serializers.IntegerField(allow_null=True)


class UsageChargeSerializer(serializers.Serializer[Any]):
    period = serializers.SerializerMethodField()
    plan = serializers.CharField(source="plan.code")
    currency = serializers.CharField(source="rating.currency")
    quantity = serializers.DecimalField(max_digits=30, decimal_places=6)
    free_units = serializers.DecimalField(
        max_digits=30,
        decimal_places=6,
        allow_null=True,
        help_text="Free units this period; null: unlimited (your subscription plan).",
    )
    free_quantity = serializers.DecimalField(
        source="rating.free_quantity", max_digits=30, decimal_places=6
    )
    billable_quantity = serializers.DecimalField(
        source="rating.billable_quantity", max_digits=30, decimal_places=6
    )
    amount = serializers.IntegerField(source="rating.amount", help_text="Minor units so far.")
    lines = ChargeLineSerializer(source="rating.lines", many=True)

    @extend_schema_field(PeriodSerializer)
    def get_period(self, obj: selectors.UsageCharge) -> dict[str, Any]:
        return PeriodSerializer({"start": obj.period_start, "end": obj.period_end}).data


class UsageSummarySerializer(serializers.Serializer[Any]):
    metric = serializers.CharField(source="meter.code")
    unit = serializers.CharField(source="meter.unit")
    aggregation = serializers.CharField(source="meter.aggregation")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    group_by = serializers.CharField()
    value = serializers.DecimalField(max_digits=30, decimal_places=6)
    buckets = UsageBucketSerializer(many=True)
    charge = serializers.SerializerMethodField(
        help_text="The charge so far in the current period (calendar month, UTC), whatever "
        "start and end are; null when your API plan does not price this metric."
    )

    @extend_schema_field(UsageChargeSerializer(allow_null=True))
    def get_charge(self, obj: selectors.UsageSummary) -> dict[str, Any] | None:
        charge = self.context.get("charge")
        return None if charge is None else UsageChargeSerializer(charge).data


# --- errors in the schema ------------------------------------------------------------------


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


TOKEN_ERRORS = {
    401: _error("Not authenticated (send the account token: `Authorization: Token …`)."),
    429: _error("Too many requests; retry after the `Retry-After` header's seconds."),
}
KEY_ERRORS = {
    401: _error("Unknown, revoked or expired API key (`Authorization: Bearer <api key>`)."),
    403: _error("The API key lacks the scope this endpoint needs."),
    429: _error("This key's rate limit (API_THROTTLE_USAGE); retry after `Retry-After` seconds."),
}


# --- API keys ------------------------------------------------------------------------------


class ApiKeyListCreateView(APIView):
    @extend_schema(
        operation_id="api_keys_list",
        responses={200: ApiKeySerializer(many=True), **TOKEN_ERRORS},
        tags=["api-keys"],
    )
    def get(self, request: Request) -> Response:
        """The caller's API keys, newest first, without secrets."""
        keys = selectors.api_key_list(user=request_user(request))
        return Response(ApiKeySerializer(keys, many=True).data)

    @extend_schema(
        operation_id="api_keys_create",
        request=ApiKeyCreateInput,
        responses={
            201: ApiKeyCreatedSerializer,
            400: _error("Invalid input; `error.fields` names the field."),
            **TOKEN_ERRORS,
        },
        tags=["api-keys"],
    )
    def post(self, request: Request) -> Response:
        """Create an API key. The response's `key` is the only time the full key is shown."""
        data = ApiKeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        created = services.api_key_create(
            user=request_user(request),
            name=v["name"],
            scopes=v.get("scopes"),
            expires_at=v.get("expires_at"),
        )
        api_key = created.api_key
        body = ApiKeyCreatedSerializer(
            {
                "id": api_key.pk,
                "name": api_key.name,
                "prefix": api_key.prefix,
                "key": created.key,
                "scopes": api_key.scopes,
                "expires_at": api_key.expires_at,
                "created_at": api_key.created_at,
            }
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyRevokeView(APIView):
    @extend_schema(
        operation_id="api_keys_revoke",
        request=None,
        responses={
            200: ApiKeySerializer,
            404: _error("Not found (or another customer's key)."),
            **TOKEN_ERRORS,
        },
        tags=["api-keys"],
    )
    def post(self, request: Request, api_key_id: int) -> Response:
        """Revoke a key: refused from the next request on, on every server."""
        api_key = selectors.api_key_get(user=request_user(request), api_key_id=api_key_id)
        return Response(ApiKeySerializer(services.api_key_revoke(api_key=api_key)).data)


# --- usage ---------------------------------------------------------------------------------


class _UsageView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKeyScope]
    throttle_classes = [ApiKeyRateThrottle]
    required_scopes: tuple[str, ...] = ()


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "payload_too_large"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


class UsageEventsView(_UsageView):
    required_scopes = (SCOPE_USAGE_WRITE,)
    # The body is read as JSON by the view itself; the schema must not offer form encodings
    # (schemathesis sent a schema-valid multipart batch, refused with 422).
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="usage_events_create",
        request=UsageBatchInput,
        responses={
            202: UsageAcceptedSerializer,
            413: _error(f"More than 1,000 events, or a body over {MAX_BODY_BYTES:,} bytes."),
            422: _error(
                "Invalid batch, nothing stored: bad JSON, or events with errors, named by index "
                "in `error.fields` (e.g. `events[3].quantity`)."
            ),
            **KEY_ERRORS,
        },
        tags=["usage"],
    )
    def post(self, request: Request) -> Response:
        """Report usage: 1 to 1,000 events, validated as a whole (one invalid event refuses the
        batch). Events whose id is already stored for you are counted as duplicates, never
        stored or counted twice, so retrying a batch is always safe."""
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"At most {MAX_BODY_BYTES:,} bytes per request.")
        body = request.body
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"At most {MAX_BODY_BYTES:,} bytes per request.")
        try:
            payload = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Unprocessable(f"The body is not valid JSON: {exc}") from exc
        try:
            events = services.usage_batch_parse(payload=payload)
            result = services.usage_events_record(customer=request_user(request), events=events)
        except services.UsageBatchTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from exc
        except services.UsageBatchInvalid as exc:
            first = next(iter(exc.fields.items()))
            body_out = error_body("validation_error", f"{first[0]}: {first[1][0]}", exc.fields)
            return Response(body_out, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        out = UsageAcceptedSerializer(
            {"accepted": result.accepted, "duplicates": result.duplicates}
        )
        return Response(out.data, status=status.HTTP_202_ACCEPTED)


class UsageEventDetailView(_UsageView):
    required_scopes = (SCOPE_USAGE_READ, SCOPE_USAGE_WRITE)

    @extend_schema(
        operation_id="usage_events_retrieve",
        responses={
            200: UsageEventSerializer,
            404: _error("No event with this id stored for you."),
            **KEY_ERRORS,
        },
        tags=["usage"],
    )
    def get(self, request: Request, event_id: str) -> Response:
        """Confirm that an event is stored, and the period (calendar month, UTC) it counts in."""
        stored = selectors.usage_event_get(customer=request_user(request), event_id=event_id)
        return Response(UsageEventSerializer(stored).data)


class UsageSummaryView(_UsageView):
    required_scopes = (SCOPE_USAGE_READ,)

    @extend_schema(
        operation_id="usage_summary",
        parameters=[
            OpenApiParameter("metric", OpenApiTypes.STR, required=True),
            OpenApiParameter("start", OpenApiTypes.DATETIME, description="Default: month start."),
            OpenApiParameter("end", OpenApiTypes.DATETIME, description="Default: next month."),
            OpenApiParameter("group_by", OpenApiTypes.STR, enum=["day", "hour"]),
        ],
        responses={
            200: UsageSummarySerializer,
            400: _error("Invalid parameters; `error.fields` names them."),
            404: _error("Unknown metric."),
            **KEY_ERRORS,
        },
        tags=["usage"],
    )
    def get(self, request: Request) -> Response:
        """Your usage of one metric over whole hours (UTC) starting in [start, end), in total
        and per day or hour, from the hourly rollups; and what the current period's usage
        costs so far on your API plan (free units first, then the plan's price)."""
        data = UsageSummaryInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        meter = selectors.meter_get_active(code=v["metric"])
        if meter is None:
            raise exceptions.NotFound("Unknown metric.")
        customer = request_user(request)
        summary = selectors.usage_summary(
            customer=customer, meter=meter, start=v["start"], end=v["end"], group_by=v["group_by"]
        )
        charge = selectors.usage_charge(
            customer=customer, meter=meter, at=timezone.now(), summary=summary
        )
        return Response(UsageSummarySerializer(summary, context={"charge": charge}).data)


__all__ = [
    "ApiKeyListCreateView",
    "ApiKeyRevokeView",
    "UsageEventDetailView",
    "UsageEventsView",
    "UsageSummaryView",
]
