"""Request ids: header on every response, safe incoming ids echoed, on every log record."""

import json
import logging
import logging.config

import pytest
from django.conf import settings

from revenue_site.logging import RequestIdFilter, _request_id, current_request_id

pytestmark = pytest.mark.urls("tests.revenue_site.error_urls")


@pytest.fixture
def request_id_caplog(caplog):
    """caplog with the same filter the configured console handler has (settings.LOGGING)."""
    assert "request_id" in settings.LOGGING["handlers"]["console"]["filters"]
    request_filter = RequestIdFilter()
    caplog.handler.addFilter(request_filter)
    yield caplog
    caplog.handler.removeFilter(request_filter)


@pytest.mark.django_db
def test_every_response_has_a_request_id(client):
    first = client.get("/health")["X-Request-ID"]
    second = client.get("/health")["X-Request-ID"]
    assert first and second and first != second
    assert len(first) == 32


def test_error_responses_have_a_request_id(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["X-Request-ID"]


@pytest.mark.parametrize("incoming", ["abc-123", "req_1.2.3", "A" * 64])
def test_a_safe_incoming_id_is_echoed(client, incoming):
    response = client.get("/api/test/log", HTTP_X_REQUEST_ID=incoming)
    assert response["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming", ["has space", "new\\nline", "A" * 65, "<script>", "id;rm -rf", "é"]
)
def test_an_unsafe_incoming_id_is_replaced(client, incoming):
    response = client.get("/api/test/log", HTTP_X_REQUEST_ID=incoming)
    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


def test_log_records_during_a_request_carry_its_id(client, request_id_caplog):
    with request_id_caplog.at_level(logging.WARNING, logger="tests.request_id"):
        response = client.get("/api/test/log", HTTP_X_REQUEST_ID="trace-42")
    records = [r for r in request_id_caplog.records if r.name == "tests.request_id"]
    assert len(records) == 1
    assert records[0].request_id == "trace-42" == response["X-Request-ID"]


def test_generated_id_in_logs_matches_the_header(client, request_id_caplog):
    with request_id_caplog.at_level(logging.WARNING, logger="tests.request_id"):
        response = client.get("/api/test/log")
    (record,) = [r for r in request_id_caplog.records if r.name == "tests.request_id"]
    assert record.request_id == response["X-Request-ID"]


def test_outside_a_request_the_id_is_a_dash(request_id_caplog):
    assert current_request_id() == "-"
    with request_id_caplog.at_level(logging.WARNING, logger="tests.request_id"):
        logging.getLogger("tests.request_id").warning("no request")
    assert request_id_caplog.records[-1].request_id == "-"


def test_the_id_does_not_leak_into_the_next_request(client):
    client.get("/api/test/log", HTTP_X_REQUEST_ID="first-one")
    assert current_request_id() == "-"


def _configured_json_formatter() -> logging.Formatter:
    """The production JSON formatter, built from settings.LOGGING exactly as dictConfig does."""
    config = json.loads(json.dumps(settings.LOGGING))  # a copy dictConfig may mutate
    configurator = logging.config.DictConfigurator(config)
    return configurator.configure_formatter(config["formatters"]["json"])


def test_json_formatter_emits_json_with_the_request_id():
    formatter = _configured_json_formatter()
    record = logging.LogRecord(
        "revenue.test", logging.WARNING, __file__, 1, "payout %s failed", ("b_1",), None
    )
    token = _request_id.set("trace-json-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        _request_id.reset(token)
    line = formatter.format(record)
    payload = json.loads(line)
    assert payload["request_id"] == "trace-json-1"
    assert payload["message"] == "payout b_1 failed"
    assert payload["level"] == "WARNING"
    assert payload["logger"] == "revenue.test"
    assert "time" in payload
    assert "\n" not in line


def test_json_formatter_keeps_extra_fields():
    formatter = _configured_json_formatter()
    record = logging.LogRecord(
        "accounts.security", logging.WARNING, __file__, 1, "login failed", (), None
    )
    record.ip = "10.0.0.1"
    record.username = "ops@example.com"
    RequestIdFilter().filter(record)
    payload = json.loads(formatter.format(record))
    assert payload["ip"] == "10.0.0.1"
    assert payload["username"] == "ops@example.com"
    assert payload["request_id"] == "-"
