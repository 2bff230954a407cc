"""Content-Security-Policy on every kind of page: no inline script anywhere, our own origin
only; the API docs (Swagger UI) served from our static files, their start-up script a file."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.accounts.factories import SuperuserFactory
from tests.affiliates.factories import AffiliateFactory, ReferralLinkFactory

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {
        part.split()[0]: part.split()[1:] for part in (p.strip() for p in header.split(";")) if part
    }


@pytest.mark.parametrize("path", ["/admin/login/", "/portal/login/", "/api/docs/"])
def test_every_page_carries_the_policy(client, path):
    response = client.get(path)
    directives = policy(response)
    assert directives["script-src"] == ["'self'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]


def test_staff_pages_have_no_inline_script(client):
    client.force_login(SuperuserFactory())
    for path in (
        "/admin/",
        "/admin/affiliates/program/",
        "/admin/marketplace/meter/",
        reverse("affiliates-program-performance"),
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert not INLINE_SCRIPT.findall(response.content.decode()), path


def test_portal_pages_have_no_inline_script(client):
    affiliate = AffiliateFactory(status="approved")
    ReferralLinkFactory(affiliate=affiliate)
    client.force_login(affiliate.user)
    for path in ("/portal/", "/portal/links/", "/portal/commissions/"):
        response = client.get(path)
        assert response.status_code == 200, path
        page = response.content.decode()
        assert not INLINE_SCRIPT.findall(page), path
    assert "affiliates/portal" in client.get("/portal/links/").content.decode()


def test_the_api_docs_use_our_static_swagger_ui_and_no_inline_script(client):
    page = client.get("/api/docs/").content.decode()
    assert not INLINE_SCRIPT.findall(page)
    sources = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert sources and all(src.startswith("/") for src in sources), sources
    assert any("swagger-ui" in src for src in sources)
    init = next(src for src in sources if "swagger-ui-bundle" not in src and "preset" not in src)
    assert client.get(init).status_code == 200
