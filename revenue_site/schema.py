"""The OpenAPI schema's AutoSchema (DEFAULT_SCHEMA_CLASS): the error answers every view can give.

A view documents its own answers (`@extend_schema(responses=...)`): what it returns and the
errors its service raises (402 declined, 409 conflict, 503 Stripe unavailable...). The answers
the framework gives around the view are the same everywhere, so they are added here, from what
the view is, instead of in every view (an undocumented status fails schemathesis'
`status_code_conformance`):

- 400 when the operation takes query parameters, or a request body it does not refuse with
  422 instead (the usage API answers any bad batch 422),
- 401 when a permission class other than AllowAny guards it (no or a bad credential),
- 403 when a permission class beyond "is signed in" guards it (a role the caller lacks), or when
  it is an unsafe method under session authentication (a missing CSRF token),
- 404 when its path has parameters (an unknown id, or another caller's),
- 429 when a throttle applies (`error.retry_after` and the `Retry-After` header).

A status the view already documents keeps the view's description.

Request fields: DRF's CharField refuses a NUL character, refuses blank unless allow_blank, and
when it trims whitespace counts "  " as blank; a string field with no pattern of its own gets a
pattern saying so (`_char_field_pattern`).

An input serializer that needs one of several optional fields says so with a class attribute,
`one_of_required = ("price", "quantity")`, and its schema gets
`anyOf: [{required: [price]}, {required: [quantity]}]`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from django.core.validators import RegexValidator
from django.http import HttpRequest, HttpResponse
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated
from rest_framework.views import APIView

from revenue_site.errors import ErrorSerializer

_DESCRIPTIONS = {
    "400": "Invalid input; `error.fields` names each refused field.",
    "401": "Not authenticated (no credential, or an unknown or expired one).",
    "403": "Not allowed: the caller lacks the role this needs, or a session-authenticated "
    "request came without its CSRF token.",
    "404": "Not found (or not the caller's).",
    "415": "The body is not JSON: send it as `application/json` (the API takes no form encodings).",
    "429": "Too many requests; retry after the `Retry-After` header's seconds "
    "(also `error.retry_after`).",
}


# What Python's str.strip() (DRF's trimming) takes for whitespace, spelled out: `\s` differs
# between regex engines (JavaScript's leaves out U+001C-U+001F and U+0085 and takes U+FEFF),
# and schemathesis generated "\u001c" as a title the API then refused as blank.
_PY_WHITESPACE = (
    r"\t\n\u000b\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _char_field_pattern(field: serializers.CharField) -> str:
    """What DRF's CharField accepts, as a pattern: never a NUL character; not blank unless
    allowed, where blank means only whitespace when the field trims it."""
    if field.allow_blank:
        return r"^[^\u0000]*$"
    if field.trim_whitespace:
        return rf"^[^\u0000]*[^\u0000{_PY_WHITESPACE}][^\u0000]*$"
    return r"^[^\u0000]+$"


# Paginated with strict parsing (an empty `limit` is a 400): pagination.LimitOffsetPagination.
_STRICT_QUERY = {"limit", "offset"}
_EMPTY = {"type": "string", "maxLength": 0}


def _empty_means_not_given(parameter: dict[str, Any]) -> None:
    """An optional query parameter sent empty (`?date_to=`) is taken as not given, as DRF's
    and django-filter's query parsing do (HTML forms send empty fields): say so, or a
    client (and schemathesis) reads `date_to=` as invalid while the API answers 200."""
    schema = parameter.get("schema")
    if (
        parameter.get("in") != "query"
        or parameter.get("required")
        or parameter.get("name") in _STRICT_QUERY
        or not isinstance(schema, dict)
        or _EMPTY in schema.get("anyOf", [])
    ):
        return
    parameter["schema"] = {"anyOf": [schema, _EMPTY]}
    description = parameter.get("description", "")
    parameter["description"] = f"{description} Empty: not given.".strip()


class AutoSchema(SpectacularAutoSchema):
    def _map_basic_serializer(self, serializer: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        one_of_required = getattr(serializer, "one_of_required", ())
        if direction == "request" and one_of_required:
            schema["anyOf"] = [{"required": [name]} for name in one_of_required]
        return schema

    def _map_serializer_field(
        self, field: Any, direction: Any, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, serializers.ListSerializer) and schema.get("type") == "array":
            # `Child(many=True, min_length=1, max_length=1000)`: drf-spectacular leaves it out.
            min_length = getattr(field, "min_length", None)  # not in the stubs
            max_length = getattr(field, "max_length", None)
            if min_length is not None:
                schema["minItems"] = min_length
            if max_length is not None:
                schema["maxItems"] = max_length
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and not isinstance(field, serializers.ChoiceField)
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum"} & set(schema)
            and not any(isinstance(v, RegexValidator) for v in field.validators)
        ):
            schema["pattern"] = _char_field_pattern(field)
        return schema

    def _insert_field_validators(self, field: Any, schema: dict[str, Any]) -> None:
        super()._insert_field_validators(field, schema)
        # drf-spectacular offers a blank-allowing field as `oneOf: [<pattern>, maxLength 0]`;
        # when the pattern accepts "" too, "" matches both and `oneOf` refuses it (schemathesis
        # sent "" as invalid data and saw it accepted). Either branch will do: `anyOf`.
        blank = {"type": "string", "maxLength": 0}
        if blank in schema.get("oneOf", []):
            schema["anyOf"] = schema.pop("oneOf")

    def _get_request_body(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        # Not get_request_serializer(): @extend_schema(request=...) replaces that method.
        body: dict[str, Any] | None = super()._get_request_body(*args, **kwargs)
        if not body:  # not a POST, PUT or PATCH (asking for a serializer would warn)
            return body
        serializer: Any = self.get_request_serializer()
        one_of_required: tuple[str, ...] = getattr(serializer, "one_of_required", ())
        if one_of_required:
            body["required"] = True
        return body

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            _empty_means_not_given(parameter)
        responses = operation.setdefault("responses", {})
        for code in self._framework_error_codes(operation):
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[code]), code
                )
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _framework_error_codes(self, operation: dict[str, Any]) -> list[str]:
        codes = []
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation and "422" not in operation.get("responses", {})
        if has_body or any(p.get("in") == "query" for p in parameters):
            codes.append("400")
        permissions = self.view.get_permissions()
        if any(not isinstance(p, AllowAny) for p in permissions):
            codes.append("401")
        # A tuple, not `AllowAny | IsAuthenticated`: DRF overloads `|` on permission classes.
        role_checked = any(not isinstance(p, (AllowAny, IsAuthenticated)) for p in permissions)
        csrf_checked = self.method not in SAFE_METHODS and any(
            isinstance(a, SessionAuthentication) for a in self.view.get_authenticators()
        )
        if role_checked or csrf_checked:
            codes.append("403")
        if any(p.get("in") == "path" for p in parameters):
            codes.append("404")
        if has_body:  # DRF parses it (the usage API reads its own: not JSON is its 422)
            codes.append("415")
        if self.view.get_throttles():
            codes.append("429")
        return codes


def documented_by(view_class: type[APIView], view: Callable[..., HttpResponse]) -> Any:
    """``view``, a plain Django view answering a hot path outside DRF's request cycle, as a URL
    callback documented by ``view_class``, the DRF view that gives the same answers: the
    endpoint enumerators of DRF and drf-spectacular find the class where ``as_view()`` puts it
    (``cls``, ``initkwargs``), so the schema describes the URL from the class's
    ``@extend_schema``. The pair's answers must agree: a test asks both the same questions."""

    @functools.wraps(view)
    def callback(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return view(request, *args, **kwargs)

    callback.cls = view_class  # type: ignore[attr-defined]
    callback.initkwargs = {}  # type: ignore[attr-defined]
    return callback


# --- OpenAPI links -------------------------------------------------------------------------------

_METHODS = ("get", "put", "patch", "post", "delete")
_PATH_PARAM = re.compile(r"\{([^}]+)\}")


def _response_properties(schema: dict[str, Any], response: dict[str, Any]) -> set[str]:
    body = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref = body.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        body = schema["components"]["schemas"].get(ref.rsplit("/", 1)[1], {})
    return set(body.get("properties", {}))


def openapi_links(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: OpenAPI links from each create to what acts on
    what it created, so a client (and schemathesis' stateful tests) can follow a real id.

    A `201` whose body has an `id` links to every operation under the created collection's
    path whose next segment is a path parameter: `POST /provider/listings/` → `GET /provider/
    listings/{listing_id}/` with `listing_id: $response.body#/id`, and the path parameters the
    create itself had are carried over (`$request.path.item_id`). Usage ingestion answers
    202 without ids: its link names the batch's first event (`$request.body#/events/0/id`).
    """
    paths: dict[str, dict[str, Any]] = result.get("paths", {})
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            for status, response in operation.get("responses", {}).items():
                if status not in ("201", "202"):
                    continue
                links = _links_from(result, paths, path, operation, status, response)
                if links:
                    response["links"] = links
    return result


def _links_from(
    result: dict[str, Any],
    paths: dict[str, dict[str, Any]],
    path: str,
    operation: dict[str, Any],
    status: str,
    response: dict[str, Any],
) -> dict[str, Any]:
    if status == "201":
        if "id" not in _response_properties(result, response):
            return {}
        created = "$response.body#/id"
    elif path.endswith("/usage/events"):
        created = "$request.body#/events/0/id"
    else:
        return {}
    carried = {name: f"$request.path.{name}" for name in _PATH_PARAM.findall(path)}
    prefix = path.rstrip("/") + "/"
    links: dict[str, Any] = {}
    for target, target_operations in sorted(paths.items()):
        rest = target[len(prefix) :] if target.startswith(prefix) else ""
        match = re.match(r"^\{([^}]+)\}", rest)
        if not match:
            continue
        parameters = {**carried, match.group(1): created}
        for method, target_operation in target_operations.items():
            if method not in _METHODS or "operationId" not in target_operation:
                continue
            # Another path parameter the link cannot fill must be one of a fixed set (an
            # order's transition), else the link would lead nowhere real.
            unfilled = [
                p
                for p in target_operation.get("parameters", [])
                if p.get("in") == "path" and p["name"] not in parameters
            ]
            if any("enum" not in p.get("schema", {}) for p in unfilled):
                continue
            name = target_operation["operationId"]
            links[name] = {
                "operationId": name,
                "parameters": parameters,
                "description": f"The {match.group(1)} of what `{operation['operationId']}` "
                "created.",
            }
    return links
