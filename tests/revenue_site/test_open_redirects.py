"""No open redirects (issue 14, section 3): every place that sends a browser to a target the
request names refuses a hostile target or replaces it with a safe default.

The places (grep for redirect, next, return_url, success_url, refresh_url): the portal's login
(`next`, also when already signed in) and logout (`next`), the staff console's login (`next`),
`/r/<code>` (the landing URL is built from the program's allow-list, the request's query string
ignored), Stripe Checkout's `success_url` / `cancel_url`, the billing portal's `return_url`,
Connect onboarding's `return_url` / `refresh_url` (these three are handed to Stripe, whose pages
then send the browser there). Other redirects in the code go to fixed `reverse()` names.

A Location is judged as a browser reads it: leading whitespace and control characters dropped,
a backslash taken for a slash, resolved against the page; its host must be ours.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import pytest
from rest_framework.test import APIClient

from tests.accounts.factories import DEFAULT_PASSWORD, StaffUserFactory, UserFactory
from tests.affiliates.factories import AffiliateFactory, ProgramFactory, ReferralLinkFactory
from tests.marketplace.factories import ProviderFactory

pytestmark = pytest.mark.django_db

OUR_HOST = "testserver"

HOSTILE = [
    "https://evil.example",
    "https://evil.example/path",
    "http://evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "https:evil.example",
    "https:/evil.example",
    "http:\\\\evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    " //evil.example",
    "\t//evil.example",
    "\x00//evil.example",
    "https://testserver@evil.example",
    "https://testserver.evil.example",
    "https://evil.example#@testserver",
    "https://evil.example\\@testserver",
    # encoded once and twice
    "%2F%2Fevil.example",
    "/%2F/evil.example",
    "%5C%5Cevil.example",
    "/%5Cevil.example",
    "https%3A%2F%2Fevil.example",
    "%252F%252Fevil.example",
    quote("//evil.example", safe=""),
    "\u3002evil.example",
    "//evil%2Eexample",
    "https://evil.example:443/",
]
# Absolute URLs among them, for the fields that must be absolute URLs (Stripe's).
HOSTILE_ABSOLUTE = [u for u in HOSTILE if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", u)] + [
    "//evil.example/done",
    "/portal/",  # relative: Stripe needs an absolute URL back to us
]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Dozens of sign-ins per test: the real hasher's cost is not what is under test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def lands_on_our_site(location: str, *, page: str) -> bool:
    """Where a browser goes with this Location, read leniently as browsers do."""
    cleaned = re.sub(r"^[\x00-\x20]+", "", location)
    cleaned = re.sub(r"[\t\n\r]", "", cleaned).replace("\\", "/")
    resolved = urlsplit(urljoin(f"http://{OUR_HOST}{page}", cleaned))
    return resolved.scheme in ("http", "https") and resolved.hostname == OUR_HOST


def test_the_location_judge_catches_what_browsers_follow():
    assert lands_on_our_site("/portal/links/", page="/portal/login/")
    assert lands_on_our_site("%2F%2Fevil.example", page="/portal/login/")  # a path of ours
    for bad in ("//evil.example", "/\\evil.example", " //evil.example", "https:evil.example"):
        assert not lands_on_our_site(bad, page="/portal/login/"), bad


# --- the portal and the staff console: `next` --------------------------------------------------
# One test per place, every hostile target in a loop (the failures listed together).


@pytest.fixture
def affiliate_user() -> Any:
    return AffiliateFactory(status="approved").user


def _login(client: Any, path: str, email: str, next_url: str) -> Any:
    return client.post(path, {"username": email, "password": DEFAULT_PASSWORD, "next": next_url})


def test_portal_login_follows_a_next_of_ours(client, affiliate_user):
    response = _login(client, "/portal/login/", affiliate_user.email, "/portal/links/")
    assert response.status_code == 302
    assert response["Location"] == "/portal/links/"


def test_portal_login_refuses_a_hostile_next(client, affiliate_user):
    wrong = {}
    for target in HOSTILE:
        client.logout()
        # in the form (as the login page carries it over) and in the query string
        form = _login(client, "/portal/login/", affiliate_user.email, target)
        client.logout()
        query = client.post(
            f"/portal/login/?next={quote(target, safe='')}",
            {"username": affiliate_user.email, "password": DEFAULT_PASSWORD},
        )
        for response in (form, query):
            if response.status_code != 302 or not lands_on_our_site(
                response["Location"], page="/portal/login/"
            ):
                wrong[target] = (response.status_code, response.get("Location"))
    assert wrong == {}


def test_portal_login_when_already_signed_in_refuses_a_hostile_next(client, affiliate_user):
    client.force_login(affiliate_user)
    wrong = {}
    for target in HOSTILE:
        response = client.get("/portal/login/", {"next": target})
        if response.status_code != 302 or not lands_on_our_site(
            response["Location"], page="/portal/login/"
        ):
            wrong[target] = (response.status_code, response.get("Location"))
    assert wrong == {}


def test_portal_logout_refuses_a_hostile_next(client, affiliate_user):
    wrong = {}
    for target in HOSTILE:
        client.force_login(affiliate_user)
        response = client.post("/portal/logout/", {"next": target})
        if response.status_code != 302 or not lands_on_our_site(
            response["Location"], page="/portal/logout/"
        ):
            wrong[target] = (response.status_code, response.get("Location"))
    assert wrong == {}


def test_portal_logout_follows_a_next_of_ours(client, affiliate_user):
    client.force_login(affiliate_user)
    response = client.post("/portal/logout/", {"next": "/portal/signup/"})
    assert response["Location"] == "/portal/signup/"


def test_staff_console_login_refuses_a_hostile_next(client):
    staff: Any = StaffUserFactory()
    response = _login(client, "/admin/login/", staff.email, "/admin/ledger/")
    assert response["Location"] == "/admin/ledger/"
    wrong = {}
    for target in HOSTILE:
        client.logout()
        response = _login(
            client, f"/admin/login/?next={quote(target, safe='')}", staff.email, target
        )
        if response.status_code != 302 or not lands_on_our_site(
            response["Location"], page="/admin/login/"
        ):
            wrong[target] = (response.status_code, response.get("Location"))
    assert wrong == {}


# --- /r/<code> -----------------------------------------------------------------------------------


def test_referral_redirect_ignores_the_query_string_and_refuses_hostile_landing_paths(client):
    program = ProgramFactory(
        landing_url="https://www.example.com/", allowed_hosts=["www.example.com"]
    )
    ReferralLinkFactory(code="safe", affiliate__program=program, landing_path="/pricing")
    for target in HOSTILE[:4]:
        params = dict.fromkeys(("next", "url", "redirect", "return_url", "landing_path"), target)
        location = client.get("/r/safe", params)["Location"]
        assert location.startswith("https://www.example.com/pricing"), location
    wrong = {}
    for index, target in enumerate(HOSTILE):
        if "\x00" in target:
            continue  # never stored: the API refuses NUL, and PostgreSQL cannot hold it
        ReferralLinkFactory(
            code=f"hostile-{index}", affiliate__program=program, landing_path=target
        )
        location = client.get(f"/r/hostile-{index}")["Location"]
        landed = urlsplit(re.sub(r"^[\x00-\x20]+", "", location).replace("\\", "/"))
        if (landed.scheme, landed.hostname) != ("https", "www.example.com"):
            wrong[target] = location
    assert wrong == {}


def test_affiliate_api_refuses_a_landing_path_off_the_allow_list():
    program = ProgramFactory(
        landing_url="https://www.example.com/", allowed_hosts=["www.example.com"]
    )
    affiliate: Any = AffiliateFactory(status="approved", program=program)
    api = APIClient()
    api.force_authenticate(affiliate.user)
    for target in ("https://evil.example/x", "//evil.example/x", "/\\evil.example"):
        response = api.post("/api/v1/affiliate/links", {"landing_path": target}, format="json")
        assert response.status_code == 400, (target, response.content)
        assert "landing_path" in response.json()["error"]["fields"]


# --- URLs handed to Stripe -----------------------------------------------------------------------


def _api(user: Any) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def _refusals(api: APIClient, path: str, base: dict[str, str], field: str) -> dict[str, Any]:
    """The hostile targets the endpoint did not refuse with a 400 naming exactly `field`."""
    wrong = {}
    for target in HOSTILE_ABSOLUTE:
        response = api.post(path, {**base, field: target}, format="json")
        fields = set(response.json().get("error", {}).get("fields", {}))
        if response.status_code != 400 or field not in fields or fields - {field, "price"}:
            wrong[target] = (response.status_code, response.content[:200])
    return wrong


def test_checkout_session_refuses_hostile_redirect_urls():
    ok = "https://localhost/done"
    api = _api(UserFactory())
    api.defaults["HTTP_HOST"] = "localhost"
    base = {"price": "price_x", "success_url": ok, "cancel_url": ok}
    for field in ("success_url", "cancel_url"):
        assert _refusals(api, "/api/v1/checkout-sessions/", base, field) == {}


def test_billing_portal_session_refuses_a_hostile_return_url():
    api = _api(UserFactory())
    assert _refusals(api, "/api/v1/billing-portal-sessions/", {}, "return_url") == {}


def test_connect_onboarding_refuses_hostile_return_and_refresh_urls():
    """Stripe's onboarding page sends the provider's browser to these: before the fix any
    http(s) URL was handed to Stripe (an open redirect through stripe.com)."""
    provider: Any = ProviderFactory(onboarded=False)
    api = _api(provider.user)
    for field in ("return_url", "refresh_url"):
        assert _refusals(api, "/api/v1/provider/onboarding/connect", {}, field) == {}


def test_connect_onboarding_takes_urls_back_to_us_or_an_allowed_origin(stripe_fake, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    provider: Any = ProviderFactory(onboarded=False)
    api = _api(provider.user)
    # the request's own host (a URLField wants a dotted name or localhost) and the origin
    for url in ("https://localhost/providers/done", "https://app.example.com/done"):
        response = api.post(
            "/api/v1/provider/onboarding/connect",
            {"return_url": url, "refresh_url": url},
            format="json",
            HTTP_HOST="localhost",
        )
        assert response.status_code == 201, response.content
