"""Optional query parameters sent empty (`?creator=`) are taken as not given, and the schema
says so; `limit` and `offset` stay strict (an empty one is a 400)."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

EMPTY = {"type": "string", "maxLength": 0}


def _query_parameters():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    yield f"{method.upper()} {path}", parameter


def test_every_optional_query_parameter_admits_empty_and_pagination_does_not():
    seen = 0
    for where, parameter in _query_parameters():
        alternatives = parameter["schema"].get("anyOf", [])
        if parameter["name"] in ("limit", "offset") or parameter.get("required"):
            assert EMPTY not in alternatives, where
        else:
            assert EMPTY in alternatives, (where, parameter["name"])
            seen += 1
    assert seen > 20  # the catalog, listings, analytics, creator and affiliate filters


def test_an_empty_filter_is_no_filter_and_an_empty_limit_is_refused():
    client = APIClient()
    assert client.get("/api/v1/content/", {"creator": ""}).status_code == 200
    listings = client.get("/api/v1/marketplace/listings/", {"price_max": "", "category": ""})
    assert listings.status_code == 200
    refused = client.get("/api/v1/content/", {"limit": ""})
    assert refused.status_code == 400 and "limit" in refused.json()["error"]["fields"]


def test_the_not_blank_pattern_agrees_with_drf_for_every_one_character_text():
    """The schema's pattern for a trimmed, non-blank text accepts exactly what DRF accepts
    (schemathesis sent "\\u001c": `\\s` is not Python's whitespace in every engine)."""
    import re

    from rest_framework import serializers

    from revenue_site.schema import _char_field_pattern

    field = serializers.CharField()
    spelled = _char_field_pattern(field)
    assert "\\s" not in spelled  # its meaning differs between regex engines and generators
    pattern = re.compile(spelled)
    for code in range(1, 0x3100):
        text = chr(code)
        try:
            field.run_validation(text)
            accepted = True
        except serializers.ValidationError:
            accepted = False
        assert bool(pattern.match(text)) == accepted, hex(code)
