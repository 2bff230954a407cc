"""`manage.py stripe_bootstrap`: dj-stripe's key, account and webhook endpoints (the platform's
and the Connect one), idempotently."""

from __future__ import annotations

import io
import json
import re

import pytest
import stripe
from django.core.management import CommandError, call_command
from djstripe import models as djm

from ledger.models import PayeeProfile
from revenue_site.stripe_setup import (
    stripe_connect_webhook_endpoint_ensure,
    stripe_webhook_endpoint_ensure,
)
from subscriptions.models import WebhookEvent
from tests.stripe_harness import connect_onboard, connected_account


def _bootstrap(url: str) -> dict:
    out = io.StringIO()
    call_command("stripe_bootstrap", "--webhook-url", url, stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    return json.loads(lines[0])


def test_running_twice_creates_one_key_account_and_endpoint(stripe_fake, settings):
    first = _bootstrap("http://127.0.0.1:8000/stripe/webhook/")
    second = _bootstrap("http://127.0.0.1:8000/stripe/webhook/")

    assert first == second
    assert set(first) == {"webhook_url", "secret", "connect_webhook_url", "connect_secret"}
    for url in (first["webhook_url"], first["connect_webhook_url"]):
        assert re.fullmatch(r"http://127\.0\.0\.1:8000/stripe/webhook/[0-9a-f-]{36}/", url)
    assert first["secret"].startswith("whsec_")
    assert first["connect_webhook_url"] != first["webhook_url"]
    assert first["connect_secret"] != first["secret"]
    assert djm.WebhookEndpoint.objects.count() == 2
    connect = djm.WebhookEndpoint.objects.get(url=first["connect_webhook_url"])
    assert connect.secret == first["connect_secret"]
    assert connect.enabled_events == ["account.updated", "payout.failed", "payout.paid"]
    endpoint = djm.WebhookEndpoint.objects.get(url=first["webhook_url"])
    assert endpoint.enabled_events == ["*"]
    assert endpoint.url == first["webhook_url"]
    assert endpoint.secret == first["secret"]
    assert first["webhook_url"].endswith(f"/{endpoint.djstripe_uuid}/")
    assert endpoint.djstripe_owner_account == stripe_fake.account
    assert djm.APIKey.objects.filter(secret=settings.STRIPE_SECRET_KEY).count() == 1
    assert djm.Account.objects.count() == 1


def test_site_url_and_webhook_base_url_name_the_same_endpoint(stripe_fake):
    from_site = _bootstrap("http://127.0.0.1:8000")
    from_base = _bootstrap("http://127.0.0.1:8000/stripe/webhook")
    other_site = _bootstrap("http://example.test")

    assert from_site == from_base
    assert other_site["webhook_url"].startswith("http://example.test/stripe/webhook/")
    assert djm.WebhookEndpoint.objects.count() == 4  # two sites, two endpoints each


def test_rejects_a_url_that_is_not_http(stripe_fake):
    with pytest.raises(CommandError):
        _bootstrap("ftp://127.0.0.1/")


@pytest.mark.django_db(transaction=True)
def test_fake_delivers_to_the_bootstrapped_endpoint(
    stripe_fake, live_server, transactional_db, celery_eager
):
    setup = _bootstrap(live_server.url)
    _bootstrap(live_server.url)  # re-registering must not double deliveries

    customer = stripe.Customer.create(email="boot@example.com")

    delivery = stripe_fake.wait_for_delivery(lambda d: d["type"] == "customer.created")
    assert delivery["status"] == 200
    assert len(stripe_fake.deliveries()) == 1
    event = djm.Event.objects.get(id=delivery["event"])
    assert event.data["object"]["id"] == customer.id
    assert WebhookEvent.objects.get(stripe_event_id=event.id).status == "succeeded"
    assert setup["webhook_url"].startswith(live_server.url + "/stripe/webhook/")


def test_against_the_stripe_api_the_endpoint_is_created_there_once(stripe_fake):
    # api_host="" takes the real-Stripe path: POST /v1/webhook_endpoints (here, the fake's).
    first = stripe_webhook_endpoint_ensure(base_url="http://127.0.0.1:8000", api_host="")
    second = stripe_webhook_endpoint_ensure(base_url="http://127.0.0.1:8000", api_host="")

    assert first.created and not second.created
    assert (first.webhook_url, first.secret) == (second.webhook_url, second.secret)
    assert first.secret.startswith("whsec_")
    remote = stripe.WebhookEndpoint.list().data
    assert [r.url for r in remote] == [first.webhook_url]
    assert remote[0].metadata["djstripe_uuid"] == str(first.endpoint.djstripe_uuid)
    row = djm.WebhookEndpoint.objects.get()
    assert (row.id, row.secret) == (remote[0].id, first.secret)


@pytest.mark.django_db(transaction=True)
def test_a_connected_accounts_account_updated_reaches_the_connect_endpoint_only(
    stripe_fake, live_server, transactional_db, celery_eager
):
    setup = _bootstrap(live_server.url)
    _bootstrap(live_server.url)
    account = connected_account(onboarded=False)
    profile = PayeeProfile.objects.create(
        payee_type="provider",
        payee_id=1,
        method=PayeeProfile.Method.STRIPE_CONNECT,
        stripe_account_id=account.id,
    )
    assert not profile.onboarding_complete

    connect_onboard(account.id)

    delivery = stripe_fake.wait_for_delivery(lambda d: d["type"] == "account.updated")
    assert delivery["status"] == 200
    connect_endpoint = djm.WebhookEndpoint.objects.get(url=setup["connect_webhook_url"])
    assert delivery["endpoint"] == connect_endpoint.id
    # Once, to the Connect endpoint: the platform's endpoint does not get it.
    assert [d["endpoint"] for d in stripe_fake.deliveries()] == [connect_endpoint.id]
    inbox = WebhookEvent.objects.get(stripe_event_id=delivery["event"])
    assert inbox.status == "succeeded"
    profile.refresh_from_db()
    assert profile.onboarding_complete

    # The platform's own events still go to the platform's endpoint only.
    stripe.Customer.create(email="boot@example.com")
    created = stripe_fake.wait_for_delivery(lambda d: d["type"] == "customer.created")
    assert created["endpoint"] != connect_endpoint.id


def test_against_the_stripe_api_the_connect_endpoint_is_created_there_once(stripe_fake):
    first = stripe_connect_webhook_endpoint_ensure(base_url="http://127.0.0.1:8000", api_host="")
    second = stripe_connect_webhook_endpoint_ensure(base_url="http://127.0.0.1:8000", api_host="")
    platform = stripe_webhook_endpoint_ensure(base_url="http://127.0.0.1:8000", api_host="")

    assert first.created and not second.created
    assert (first.webhook_url, first.secret) == (second.webhook_url, second.secret)
    assert first.webhook_url != platform.webhook_url
    remote = {r.url: r for r in stripe.WebhookEndpoint.list().data}
    assert set(remote) == {first.webhook_url, platform.webhook_url}
    assert remote[first.webhook_url].enabled_events == [
        "account.updated",
        "payout.failed",
        "payout.paid",
    ]
    # The fake took connect=true: a connected account's event goes to that endpoint only.
    connect_onboard(connected_account(onboarded=False).id)
    delivery = stripe_fake.wait_for_delivery(lambda d: d["type"] == "account.updated")
    assert delivery["endpoint"] == remote[first.webhook_url].id
    assert [d["endpoint"] for d in stripe_fake.deliveries()] == [delivery["endpoint"]]
