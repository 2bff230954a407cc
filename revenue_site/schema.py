"""The OpenAPI schema's AutoSchema (DEFAULT_SCHEMA_CLASS): the error answers every view can give.

A view documents its own answers (`@extend_schema(responses=...)`): what it returns and the
errors its service raises (402 declined, 409 conflict, 503 Stripe unavailable...). The answers
the framework gives around the view are the same everywhere, so they are added here, from what
the view is, instead of in every view (an undocumented status fails schemathesis'
`status_code_conformance`):

- 400 when the operation takes a request body or query parameters (DRF validation),
- 401 when a permission class other than AllowAny guards it (no or a bad credential),
- 403 when a permission class beyond "is signed in" guards it (a role the caller lacks), or when
  it is an unsafe method under session authentication (a missing CSRF token),
- 404 when its path has parameters (an unknown id, or another caller's),
- 429 when a throttle applies (`error.retry_after` and the `Retry-After` header).

A status the view already documents keeps the view's description.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated

from revenue_site.errors import ErrorSerializer

_DESCRIPTIONS = {
    "400": "Invalid input; `error.fields` names each refused field.",
    "401": "Not authenticated (no credential, or an unknown or expired one).",
    "403": "Not allowed: the caller lacks the role this needs, or a session-authenticated "
    "request came without its CSRF token.",
    "404": "Not found (or not the caller's).",
    "429": "Too many requests; retry after the `Retry-After` header's seconds "
    "(also `error.retry_after`).",
}


class AutoSchema(SpectacularAutoSchema):
    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
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
        if "requestBody" in operation or any(p.get("in") == "query" for p in parameters):
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
        if self.view.get_throttles():
            codes.append("429")
        return codes
