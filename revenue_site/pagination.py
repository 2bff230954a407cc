"""The API's pagination: DRF's limit/offset, refusing a malformed `limit` or `offset` with 400.

DRF's LimitOffsetPagination quietly falls back to the defaults on `limit=abc` or `offset=-3`,
so a request the schema forbids (both are non-negative integers) was answered 200 as if the
client had asked for something else. Here it is refused, naming the parameter, and the schema
says the bounds.
"""

from __future__ import annotations

from typing import Any

from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

_MINIMUM = {"limit": 1, "offset": 0}
# The database adds them in a bigint: larger values were a 500 ("bigint out of range").
MAXIMUM = 2**62


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    def _parameter(self, request: Request, name: str) -> int | None:
        values = request.query_params.getlist(name)
        if not values:
            return None
        minimum = _MINIMUM[name]
        raw = values[-1]
        if (
            len(values) > 1
            or not raw.isascii()
            or not raw.isdigit()
            or not minimum <= int(raw) <= MAXIMUM
        ):
            raise ValidationError({name: [f"A whole number from {minimum} to {MAXIMUM}."]})
        return int(raw)

    def get_limit(self, request: Request) -> int | None:
        limit = self._parameter(request, self.limit_query_param)
        if limit is None:
            return self.default_limit
        return min(limit, self.max_limit) if self.max_limit else limit

    def get_offset(self, request: Request) -> int:
        return self._parameter(request, self.offset_query_param) or 0

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            name = parameter["name"]
            if name in (self.limit_query_param, self.offset_query_param):
                key = "limit" if name == self.limit_query_param else "offset"
                parameter["schema"]["minimum"] = _MINIMUM[key]
                parameter["schema"]["maximum"] = MAXIMUM
        return parameters
