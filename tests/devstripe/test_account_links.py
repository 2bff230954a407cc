"""Connect onboarding on the fake: Express accounts start restricted, account links (held to
the pinned API version), the hosted stand-in page, and ``account.updated`` on completion."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
import stripe

from devstripe.resources import ACCOUNT_ID
from tests.devstripe import conformance
from tests.devstripe.recording import all_events

pytestmark = pytest.mark.django_db

RETURN = "https://app.example.com/provider/onboarding/return"
REFRESH = "https://app.example.com/provider/onboarding/refresh"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _open(url: str, method: str = "GET", data: dict[str, str] | None = None) -> tuple[int, str]:
    """Status and Location (or body) of one request, without following redirects."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location") or exc.read().decode()


def _account_events(account_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in all_events()
        if e["type"] == "account.updated" and e["data"]["object"]["id"] == account_id
    ]


def test_a_new_express_account_is_restricted_until_onboarded(stripe_fake):
    account = stripe.Account.create(type="express", country="US", email="p@example.com")

    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (
        False,
        False,
        False,
    )
    assert account.requirements.currently_due
    assert account.requirements.disabled_reason == "requirements.past_due"
    assert account.capabilities["transfers"] == "inactive"
    # The platform account is not a connected account: it stays enabled.
    platform = stripe.Account.retrieve()
    assert platform.id == ACCOUNT_ID
    assert (platform.charges_enabled, platform.payouts_enabled) == (True, True)


def test_the_hosted_page_completes_onboarding_once_and_emits_account_updated(recorder):
    account = stripe.Account.create(type="express", country="US", idempotency_key="acct-1")
    link = stripe.AccountLink.create(
        account=account.id,
        refresh_url=REFRESH,
        return_url=RETURN,
        type="account_onboarding",
        idempotency_key="link-1",
    )
    assert link.url.startswith(recorder_base() + "/_config/connect/onboarding/")
    assert link.expires_at == link.created + 300
    assert "id" not in link

    status, page = _open(link.url)
    assert status == 200 and account.id in page
    assert _open(link.url, "POST", {}) == (302, RETURN)

    onboarded = stripe.Account.retrieve(account.id)
    assert (onboarded.charges_enabled, onboarded.payouts_enabled) == (True, True)
    assert onboarded.details_submitted is True
    assert onboarded.requirements.currently_due == []
    assert onboarded.capabilities["transfers"] == "active"
    assert onboarded.tos_acceptance.date is not None
    (event,) = _account_events(account.id)
    assert event["account"] == account.id
    assert event["data"]["previous_attributes"]["payouts_enabled"] is False
    assert event["data"]["object"]["payouts_enabled"] is True

    # Single-use: a second visit goes to refresh_url and changes nothing.
    assert _open(link.url) == (302, REFRESH)
    assert _open(link.url, "POST", {}) == (302, REFRESH)
    assert len(_account_events(account.id)) == 1

    bodies = [b for _m, _u, status, b in recorder.bodies if status < 400 and b]
    assert {b["object"] for b in bodies} >= {"account", "account_link"}
    found = conformance.all_violations([*bodies, event])
    assert found == {}, json.dumps(found, indent=1)


def recorder_base() -> str:
    return stripe.api_base


def test_the_config_endpoint_onboards_and_restricts_an_account(stripe_fake):
    account = stripe.Account.create(type="express")
    url = f"{stripe_fake.api_base}/_config/accounts/{account.id}/onboard"

    status, body = _open(url, "POST", {})
    assert status == 200 and json.loads(body)["payouts_enabled"] is True
    assert _open(url, "POST", {})[0] == 200  # nothing changed: no second event
    status, body = _open(url, "POST", {"payouts_enabled": "false"})
    assert json.loads(body)["payouts_enabled"] is False
    assert json.loads(body)["requirements"]["currently_due"]

    events = _account_events(account.id)
    # The fake lists events oldest first.
    assert [e["data"]["object"]["payouts_enabled"] for e in events] == [True, False]
    assert events[0]["created"] <= events[1]["created"]
    assert (
        _open(f"{stripe_fake.api_base}/_config/accounts/acct_nobody/onboard", "POST", {})[0] == 404
    )


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"account": "acct_nobody"}, "account", "No such account: 'acct_nobody'"),
        ({"account": ACCOUNT_ID}, "account", "No such account"),
        ({"type": "account_update"}, "type", "Stripe-hosted Dashboard"),
        ({"type": "verify"}, "type", "account_onboarding or account_update"),
        ({"return_url": "not a url"}, "return_url", "Not a valid URL"),
        ({"refresh_url": "ftp://x.example"}, "refresh_url", "Not a valid URL"),
        ({"collect": "everything"}, "collect", "collect"),
        (
            {"collect": "currently_due", "collection_options": {"fields": "eventually_due"}},
            "collect",
            "both",
        ),
    ],
)
def test_account_links_are_refused_as_stripe_refuses_them(stripe_fake, params, param, message):
    account = stripe.Account.create(type="express")
    request = {
        "account": account.id,
        "type": "account_onboarding",
        "return_url": RETURN,
        "refresh_url": REFRESH,
        **params,
    }
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.AccountLink.create(**request)
    assert refused.value.param == param
    assert message in refused.value.user_message


def test_an_unknown_link_is_not_found(stripe_fake):
    account = stripe.Account.create(type="express")
    link = stripe.AccountLink.create(
        account=account.id, type="account_onboarding", return_url=RETURN, refresh_url=REFRESH
    )
    assert _open(link.url + "x")[0] == 404
    assert _open(link.url + "x", "POST", {})[0] == 404
    assert stripe.Account.retrieve(account.id).payouts_enabled is False


def test_a_custom_account_may_have_an_account_update_link(stripe_fake):
    account = stripe.Account.create(type="custom", country="US")
    link = stripe.AccountLink.create(account=account.id, type="account_update")
    assert link.url
