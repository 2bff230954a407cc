"""CORS is restricted to CORS_ALLOWED_ORIGINS; security headers are on every response."""

import pytest


@pytest.mark.django_db
def test_api_refuses_cross_origin_reads_from_unlisted_origins(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://portal.example.com"]
    response = client.get("/api/schema/", HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.django_db
def test_api_allows_listed_origin_including_preflight(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://portal.example.com"]
    response = client.options(
        "/api/v1/auth/token",
        HTTP_ORIGIN="https://portal.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert response["Access-Control-Allow-Origin"] == "https://portal.example.com"


@pytest.mark.django_db
def test_cors_never_applies_outside_the_api(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://portal.example.com"]
    response = client.get("/admin/login/", HTTP_ORIGIN="https://portal.example.com")
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.django_db
def test_security_headers(client):
    response = client.get("/admin/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
