"""The authorization matrix: every route of the URL conf (API, portal, the rest) and every
page of the staff console, requested by each role, answers the status this table says.

The routes come from the URL conf itself, so a new endpoint without an entry here fails
``test_every_route_has_an_entry``: whoever adds one decides who may call it. Ids in paths are
ones that do not exist, so a role that passes the permission check gets 404 (or 405 for a
method the view does not have), and one that does not gets 401/403 before any lookup. Whether
customer A can read customer B's object is the object-level scoping tested per app (404).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.staff_groups import FINANCE, SUPPORT
from tests.accounts.factories import StaffUserFactory, UserFactory
from tests.affiliates.factories import AffiliateFactory
from tests.content.factories import CreatorFactory
from tests.marketplace.factories import ProviderFactory

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "customer", "affiliate", "creator", "provider", "finance", "support")

# Path parameters: values that name nothing.
_PARAMS = {
    "int": "999999",
    "str": "sub_doesnotexist",
    "slug": "accept",
    "path": "evt_doesnotexist",
    "uuid": str(uuid.UUID(int=7)),
}

# Routes outside these prefixes (Django's admin has its own check below).
_SKIPPED_PREFIXES = ("admin/",)


def _routes(patterns=None, prefix: str = "") -> Iterator[tuple[str, str]]:
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name or ""


def _path(route: str) -> str:
    out = route
    for converter, value in _PARAMS.items():
        while f"<{converter}:" in out:
            start = out.index(f"<{converter}:")
            out = out[:start] + value + out[out.index(">", start) + 1 :]
    return "/" + out


def routes() -> list[str]:
    return sorted({route for route, _ in _routes() if not route.startswith(_SKIPPED_PREFIXES)})


def expected(route: str) -> dict[str, int]:
    return EXPECTED[route]


def _all(status: int) -> dict[str, int]:
    """Every role, signed in or not, gets the same answer (public, or refused for all)."""
    return dict.fromkeys(ROLES, status)


def _signed_in(*, anonymous: int, signed_in: int) -> dict[str, int]:
    """Any signed-in account (everyone is a customer), none for anonymous callers."""
    return {role: anonymous if role == "anonymous" else signed_in for role in ROLES}


def _only(role: str, status: int, *, anonymous: int, others: int) -> dict[str, int]:
    """One role's own endpoint: that role passes, other accounts are refused."""
    row = _signed_in(anonymous=anonymous, signed_in=others)
    row[role] = status
    return row


def _staff(status: int) -> dict[str, int]:
    """What the staff roles get on a staff endpoint (both groups may view the figures)."""
    return {"finance": status, "support": status}


# One row per route: the status each role gets for a GET (404: allowed, the id names nothing;
# 405: allowed, the route takes another method; 401/403/302: refused before any lookup).
# /metrics is public by design (block it at the proxy, SECURITY.md); the usage endpoints take
# an API key, never a session or token, so every role gets 401 there.
EXPECTED: dict[str, dict[str, int]] = {
    "api/docs/": _all(200),
    "api/schema/": _all(200),
    "api/v1/accounts/me": _signed_in(anonymous=401, signed_in=200),
    "api/v1/accounts/signup": _all(405),
    "api/v1/affiliate/commissions": _only("affiliate", 200, anonymous=401, others=403),
    "api/v1/affiliate/commissions/<int:pk>": _only("affiliate", 404, anonymous=401, others=403),
    "api/v1/affiliate/links": _only("affiliate", 200, anonymous=401, others=403),
    "api/v1/affiliate/links/<int:pk>": _only("affiliate", 404, anonymous=401, others=403),
    "api/v1/affiliate/me": _only("affiliate", 200, anonymous=401, others=403),
    "api/v1/affiliate/payout-settings": _only("affiliate", 200, anonymous=401, others=403),
    "api/v1/affiliate/payouts": _only("affiliate", 200, anonymous=401, others=403),
    "api/v1/affiliate/stats": _only("affiliate", 200, anonymous=401, others=403),
    "api/v1/analytics/cohorts": _signed_in(anonymous=401, signed_in=403) | _staff(400),
    "api/v1/analytics/movements": _signed_in(anonymous=401, signed_in=403) | _staff(400),
    "api/v1/analytics/revenue": _signed_in(anonymous=401, signed_in=403) | _staff(400),
    "api/v1/analytics/summary": _signed_in(anonymous=401, signed_in=403) | _staff(400),
    "api/v1/api-keys/": _signed_in(anonymous=401, signed_in=200),
    "api/v1/api-keys/<int:api_key_id>/revoke": _signed_in(anonymous=401, signed_in=405),
    "api/v1/auth/token": _all(405),
    "api/v1/billing-portal-sessions/": _signed_in(anonymous=401, signed_in=405),
    "api/v1/checkout-sessions/": _signed_in(anonymous=401, signed_in=405),
    "api/v1/content/": _all(200),
    "api/v1/content/<int:item_id>/": _all(404),
    "api/v1/content/<int:item_id>/licenses/": _signed_in(anonymous=401, signed_in=405),
    "api/v1/content/licenses/": _signed_in(anonymous=401, signed_in=200),
    "api/v1/content/licenses/verify": _all(400),
    "api/v1/content/usage": _all(405),
    "api/v1/creator/balance": _only("creator", 200, anonymous=401, others=403),
    "api/v1/creator/content/": _only("creator", 200, anonymous=401, others=403),
    "api/v1/creator/content/<int:item_id>/": _only("creator", 404, anonymous=401, others=403),
    "api/v1/creator/content/<int:item_id>/license-types/": _only(
        "creator", 405, anonymous=401, others=403
    ),
    "api/v1/creator/content/<int:item_id>/license-types/<int:license_type_id>/": _only(
        "creator", 405, anonymous=401, others=403
    ),
    "api/v1/creator/content/<int:item_id>/shares": _only("creator", 405, anonymous=401, others=403),
    "api/v1/creator/earnings/": _only("creator", 200, anonymous=401, others=403),
    "api/v1/creator/licenses/": _only("creator", 200, anonymous=401, others=403),
    "api/v1/creator/licenses/<int:license_id>/": _only("creator", 404, anonymous=401, others=403),
    "api/v1/creator/payout-settings": _only("creator", 200, anonymous=401, others=403),
    "api/v1/creator/payouts/": _only("creator", 200, anonymous=401, others=403),
    "api/v1/creator/profile": _only("creator", 200, anonymous=401, others=403),
    "api/v1/creator/usage/": _only("creator", 200, anonymous=401, others=403),
    "api/v1/entitlements/": _signed_in(anonymous=401, signed_in=200),
    "api/v1/invoices/": _signed_in(anonymous=401, signed_in=200),
    "api/v1/marketplace/categories/": _all(200),
    "api/v1/marketplace/listings/": _all(200),
    "api/v1/marketplace/listings/<int:listing_id>/": _all(404),
    "api/v1/marketplace/orders/": _signed_in(anonymous=401, signed_in=200),
    "api/v1/marketplace/orders/<int:order_id>/": _signed_in(anonymous=401, signed_in=404),
    "api/v1/marketplace/orders/<int:order_id>/<slug:transition>": _signed_in(
        anonymous=401, signed_in=405
    ),
    "api/v1/marketplace/orders/<int:order_id>/messages/": _signed_in(anonymous=401, signed_in=404),
    "api/v1/plans/": _all(200),
    "api/v1/provider/earnings/": _only("provider", 200, anonymous=401, others=403),
    "api/v1/provider/listings/": _only("provider", 200, anonymous=401, others=403),
    "api/v1/provider/listings/<int:listing_id>/": _only("provider", 404, anonymous=401, others=403),
    "api/v1/provider/listings/<int:listing_id>/pause": _only(
        "provider", 405, anonymous=401, others=403
    ),
    "api/v1/provider/listings/<int:listing_id>/resume": _only(
        "provider", 405, anonymous=401, others=403
    ),
    "api/v1/provider/listings/<int:listing_id>/submit": _only(
        "provider", 405, anonymous=401, others=403
    ),
    "api/v1/provider/listings/<int:listing_id>/withdraw": _only(
        "provider", 405, anonymous=401, others=403
    ),
    "api/v1/provider/onboarding": _only("provider", 200, anonymous=401, others=403),
    "api/v1/provider/onboarding/bank": _only("provider", 405, anonymous=401, others=403),
    "api/v1/provider/onboarding/connect": _only("provider", 405, anonymous=401, others=403),
    "api/v1/provider/onboarding/refresh": _only("provider", 405, anonymous=401, others=403),
    "api/v1/provider/payouts/": _only("provider", 200, anonymous=401, others=403),
    "api/v1/provider/profile": _only("provider", 200, anonymous=401, others=403),
    "api/v1/subscriptions/": _signed_in(anonymous=401, signed_in=200),
    "api/v1/subscriptions/<str:subscription_id>/": _signed_in(anonymous=401, signed_in=404),
    "api/v1/subscriptions/<str:subscription_id>/cancel": _signed_in(anonymous=401, signed_in=405),
    "api/v1/subscriptions/<str:subscription_id>/change": _signed_in(anonymous=401, signed_in=405),
    "api/v1/subscriptions/<str:subscription_id>/resume": _signed_in(anonymous=401, signed_in=405),
    "api/v1/usage/events": _all(401),
    "api/v1/usage/events/<path:event_id>": _all(401),
    "api/v1/usage/summary": _all(401),
    "health": _all(200),
    "metrics": _all(200),
    "portal/": _only("affiliate", 200, anonymous=302, others=403),
    "portal/commissions.csv": _only("affiliate", 200, anonymous=302, others=403),
    "portal/commissions/": _only("affiliate", 200, anonymous=302, others=403),
    "portal/commissions/<int:pk>/": _only("affiliate", 404, anonymous=302, others=403),
    "portal/links/": _only("affiliate", 200, anonymous=302, others=403),
    "portal/login/": _signed_in(anonymous=200, signed_in=302),
    "portal/logout/": _all(405),
    "portal/password-reset/": _all(200),
    "portal/password-reset/done/": _all(200),
    "portal/payout-settings/": _only("affiliate", 200, anonymous=302, others=403),
    "portal/payouts/": _only("affiliate", 200, anonymous=302, others=403),
    "portal/reset/<uidb64>/<token>/": _all(200),
    "portal/reset/done/": _all(200),
    "portal/signup/": _all(200),
    "r/<str:code>": _all(404),
    "stripe/webhook/<uuid:uuid>/": _all(405),
}


@pytest.fixture
def users() -> dict:
    """One account per signed-in role; the staff ones in their staff group."""
    users = {
        "customer": UserFactory(),
        "affiliate": AffiliateFactory(status="approved").user,
        "creator": CreatorFactory().user,
        "provider": ProviderFactory().user,
        "finance": StaffUserFactory(),
        "support": StaffUserFactory(),
    }
    users["finance"].groups.add(Group.objects.get(name=FINANCE))
    users["support"].groups.add(Group.objects.get(name=SUPPORT))
    return users


@pytest.fixture
def clients(users) -> dict[str, APIClient]:
    made: dict[str, APIClient] = {"anonymous": APIClient()}
    for role, user in users.items():
        client = APIClient()
        client.force_login(user)  # session: the portal and the console
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        made[role] = client
    return made


def statuses_of(clients: dict[str, APIClient], route: str) -> dict[str, int]:
    return {role: clients[role].get(_path(route)).status_code for role in ROLES}


def test_every_route_has_an_entry():
    missing = [route for route in routes() if route not in EXPECTED]
    assert missing == [], f"routes without an authorization entry: {missing}"
    stale = [route for route in EXPECTED if route not in routes()]
    assert stale == [], f"entries for routes that no longer exist: {stale}"


def test_every_route_answers_each_role_as_the_table_says(clients):
    wrong = {}
    for route in routes():
        got = statuses_of(clients, route)
        if got != EXPECTED.get(route):
            wrong[route] = got
    assert wrong == {}, wrong


def test_the_staff_console_lets_in_only_staff_with_the_models_permission(clients, users):
    """Every registered model's changelist: anonymous callers and accounts that are not staff
    are sent to the login page; a staff member gets it with the model's view or change
    permission (from their group) and 403 without."""
    wrong = {}
    for model in admin.site._registry:
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        for role in ROLES:
            if role in ("finance", "support"):
                user = users[role]
                allowed = user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or (
                    user.has_perm(f"{opts.app_label}.change_{opts.model_name}")
                )
                want = 200 if allowed else 403
            else:
                want = 302
            got = clients[role].get(url)
            if got.status_code != want or (
                want == 302 and not got.headers["Location"].startswith("/admin/login/")
            ):
                wrong[(url, role)] = got.status_code
    assert wrong == {}, wrong
    # The home page (the dashboard for staff with the permission, else the app list).
    assert clients["anonymous"].get("/admin/").status_code == 302
    assert clients["customer"].get("/admin/").status_code == 302
    assert clients["finance"].get("/admin/").status_code == 200
