"""CSRF: every form we serve carries the token and every write that a browser's cookies could
authenticate needs it (issue 14, section 3).

The pages come from the URL conf, not from a list: every route outside /api/, /admin/ and the
Stripe webhook is requested as each kind of visitor, every ``<form method="post">`` in the HTML
is parsed, and the test proves that the form holds ``csrfmiddlewaretoken``, that posting it
without the token is refused (403) and that posting it with the token gets through. Every such
route is also posted to without a token, form or not, so a view made ``csrf_exempt`` fails.
A form added to a page later is found the same way.

The API: every unsafe method of every route under /api/ is sent with a session cookie and no
CSRF token (403 naming CSRF), with the token (no CSRF refusal) and with a token credential
(never a CSRF refusal: a token is not sent by a browser on its own). A view authenticated by
anything else than DRF's token, session (which enforces CSRF) or our API-key schemes fails.

The staff console's own templates are checked statically (each post form has the token tag);
Django's admin views are csrf_protect'ed by Django.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from marketplace.auth import ApiKeyAuthentication
from tests.accounts.factories import StaffUserFactory, UserFactory
from tests.affiliates.factories import AffiliateFactory, CommissionFactory, ReferralLinkFactory

pytestmark = pytest.mark.django_db

UNSAFE = ("post", "put", "patch", "delete")

# Routes that take writes from machines that prove themselves another way, never from a
# browser's cookies: Stripe signs every webhook (Stripe-Signature, verified before anything).
CSRF_EXEMPT_BY_DESIGN = {"stripe/webhook/<uuid:uuid>/", "stripe/webhook/"}
# Authentication schemes an API view may use. SessionAuthentication enforces CSRF; the others
# read a header a browser never sends by itself (Authorization: Token / Bearer).
ALLOWED_AUTHENTICATORS = (TokenAuthentication, SessionAuthentication, ApiKeyAuthentication)


def _routes(patterns: Any = None, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def html_routes() -> list[str]:
    return sorted(
        {
            route
            for route, _ in _routes()
            if not route.startswith(("api/", "admin/"))
            and route not in CSRF_EXEMPT_BY_DESIGN
            and route not in ("health", "metrics")
        }
    )


def api_writes() -> list[tuple[str, str, Any]]:
    """(route, method, view class) for every unsafe method an /api/ route's view has."""
    out = {}
    for route, callback in _routes():
        cls = getattr(callback, "cls", None)
        if not route.startswith("api/") or cls is None:
            continue
        for method in UNSAFE:
            if hasattr(cls, method):
                out[(route, method)] = cls
    return [(route, method, cls) for (route, method), cls in sorted(out.items())]


# --- HTML forms --------------------------------------------------------------------------------


@dataclass
class Form:
    method: str
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = Form(values.get("method", "get").lower(), values.get("action", ""))
            self.forms.append(self._current)
        elif self._current is not None and tag in ("input", "select", "textarea", "button"):
            name = values.get("name")
            if name and values.get("type") not in ("submit", "checkbox", "radio"):
                self._current.fields[name] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms_in(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def _reset_path(user: Any) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return f"/portal/reset/{uid}/{default_token_generator.make_token(user)}/"


@dataclass
class Visitor:
    name: str
    user: Any
    commission_pk: int = 999999

    def client(self) -> Client:
        client = Client(enforce_csrf_checks=True)
        if self.user is not None:
            client.force_login(self.user)
        return client

    def path(self, route: str) -> str:
        if route == "portal/reset/<uidb64>/<token>/":
            # A valid link (the user's own, or a stranger's for an anonymous visitor): the page
            # with the new-password form.
            return _reset_path(self.user or UserFactory())
        values = {"<int:pk>": str(self.commission_pk), "<str:code>": "csrf-link"}
        out = "/" + route
        for param, value in values.items():
            out = out.replace(param, value)
        assert "<" not in out, f"no value for a path parameter of {route}"
        return out


@pytest.fixture
def visitors() -> list[Visitor]:
    approved = AffiliateFactory(status="approved")
    ReferralLinkFactory(affiliate=approved, code="csrf-link")
    commission: Any = CommissionFactory(referral__affiliate=approved)
    return [
        Visitor("anonymous", None),
        Visitor("customer", UserFactory()),
        Visitor("affiliate", approved.user, commission_pk=commission.pk),
        Visitor("pending affiliate", AffiliateFactory(status="pending").user),
        Visitor("staff", StaffUserFactory()),
    ]


def _page(client: Client, path: str) -> tuple[str, str] | None:
    """(final path, HTML) of a page after redirects, or None when it is not an HTML page."""
    response = client.get(path)
    while response.status_code in (301, 302) and response["Location"].startswith("/"):
        response = client.get(response["Location"])  # our own redirects, not /r/'s landing
    if (
        response.status_code in (301, 302)
        or response.streaming
        or "text/html" not in response.get("Content-Type", "")
    ):
        return None
    return response.wsgi_request.path, response.content.decode()


def _is_csrf_refusal(response: Any) -> bool:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code == 403 and b"CSRF" in body


def test_every_post_form_served_holds_the_token_and_is_refused_without_it(visitors):
    seen: set[str] = set()
    problems: list[str] = []
    for visitor in visitors:
        for route in html_routes():
            page = _page(visitor.client(), visitor.path(route))
            if page is None:
                continue
            count = len(forms_in(page[1]))
            # Each form on a fresh visit: posting one may sign the visitor out (logout) or use
            # up the page's link (password reset), which would spoil the next form.
            for index in range(count):
                client = visitor.client()
                page = _page(client, visitor.path(route))
                assert page is not None
                page_path, html = page
                form = forms_in(html)[index]
                if form.method != "post":
                    continue
                action = urlsplit(urljoin(page_path, form.action)).path
                where = f"{visitor.name}: form on {page_path} posting to {action}"
                seen.add(re.sub(r"/reset/[^/]+/", "/reset/<uid>/", action))
                if not form.fields.get("csrfmiddlewaretoken"):
                    problems.append(f"{where} has no csrfmiddlewaretoken")
                    continue
                without = {k: v for k, v in form.fields.items() if k != "csrfmiddlewaretoken"}
                refused = client.post(action, without)
                if not _is_csrf_refusal(refused):
                    problems.append(f"{where}: {refused.status_code} without the token")
                accepted = client.post(action, form.fields)
                if accepted.status_code not in (200, 302):
                    problems.append(f"{where}: {accepted.status_code} with the token")
    assert problems == []
    # Not a vacuous pass: the portal's forms were all found and tried.
    assert {
        "/portal/login/",
        "/portal/logout/",
        "/portal/signup/",
        "/portal/password-reset/",
        "/portal/reset/<uid>/set-password/",
        "/portal/links/",
        "/portal/payout-settings/",
    } <= seen, seen


def test_every_page_route_refuses_a_post_without_the_token(visitors):
    """Form or not: a signed-in visitor's POST without a token is refused (403), or the route
    takes no POST at all (405). A csrf_exempt view fails here."""
    wrong = {}
    for visitor in visitors:
        for route in html_routes():
            response = visitor.client().post(visitor.path(route), {"x": "1"})
            if not (_is_csrf_refusal(response) or response.status_code == 405):
                wrong[(visitor.name, route)] = response.status_code
    assert wrong == {}


def test_staff_console_templates_put_the_token_in_every_post_form():
    """Our own admin pages (refund, moderation, statements, billing actions...): each
    ``<form method="post">`` in a template holds ``{% csrf_token %}`` before it closes."""
    base = Path(settings.BASE_DIR)
    templates = [
        p
        for p in base.glob("*/templates/**/*.html")
        if ".venv" not in p.parts and "node_modules" not in p.parts
    ]
    assert templates
    missing = []
    post_forms = 0
    for template in templates:
        text = template.read_text()
        for match in re.finditer(r"<form\b[^>]*>(.*?)</form>", text, re.S | re.I):
            if re.search(r"method\s*=\s*[\"']?post", match.group(0)[:200], re.I):
                post_forms += 1
                if "{% csrf_token %}" not in match.group(1):
                    missing.append(str(template.relative_to(base)))
    assert post_forms >= 10
    assert missing == []


# --- the API -----------------------------------------------------------------------------------


def test_api_views_authenticate_only_by_schemes_that_need_csrf_or_a_header():
    wrong = {}
    for route, _method, cls in api_writes():
        for authenticator in cls().get_authenticators():
            if not isinstance(authenticator, ALLOWED_AUTHENTICATORS):
                wrong[route] = type(authenticator).__name__
    assert wrong == {}


def _csrf_cookie(client: APIClient) -> str:
    client.get("/portal/password-reset/")  # a page with a form sets the CSRF cookie
    return client.cookies[settings.CSRF_COOKIE_NAME].value


def _send(client: APIClient, method: str, path: str, **extra: Any) -> Any:
    return getattr(client, method)(path, {}, format="json", **extra)


def test_session_authenticated_api_writes_need_the_csrf_token():
    """A signed-in browser's session cookie alone cannot write through the API: every unsafe
    method of every view that reads the session answers 403 naming CSRF, and the same request
    with the token is not refused for CSRF. Views that do not read the session (public ones,
    the licence-key and API-key ones) treat the cookie as nothing: no CSRF, no account."""
    user: Any = UserFactory()
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    token = _csrf_cookie(browser)
    checked = 0
    wrong = {}
    for route, method, cls in api_writes():
        path = "/" + re.sub(r"<[^>]+>", "999999", route)
        reads_session = any(
            isinstance(a, SessionAuthentication) for a in cls().get_authenticators()
        )
        without = _send(browser, method, path)
        with_token = _send(browser, method, path, HTTP_X_CSRFTOKEN=token)
        if with_token.status_code == 403 and "CSRF" in with_token.content.decode():
            wrong[(route, method, "with token")] = with_token.status_code
        if reads_session:
            checked += 1
            if not _is_csrf_refusal(without):
                wrong[(route, method, "without token")] = without.status_code
        elif _is_csrf_refusal(without):
            wrong[(route, method, "no session read, yet CSRF")] = without.status_code
    assert wrong == {}
    assert checked >= 30


def test_token_authenticated_api_writes_do_not_need_csrf():
    user: Any = UserFactory()
    api = APIClient(enforce_csrf_checks=True)
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    refused = {
        (route, method)
        for route, method, _ in api_writes()
        if _is_csrf_refusal(_send(api, method, "/" + re.sub(r"<[^>]+>", "999999", route)))
    }
    assert refused == set()
    # and the token really authenticates a write with no CSRF token at all
    created = api.post("/api/v1/api-keys/", {"name": "ci"}, format="json")
    assert created.status_code == 201, created.content
