"""Providers: becoming one, Stripe Connect Express onboarding through the fake (account link,
the hosted page, a signed ``account.updated`` back to our webhook), out-of-order events, bank
details for CSV payouts, and the onboarding status the API reports."""

from __future__ import annotations

import secrets
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
from django.utils import timezone
from rest_framework.test import APIClient

from ledger.chart import SystemAccount
from ledger.models import Account, PayeeProfile
from ledger.payees import iban_is_valid, payee_connect_account_sync
from ledger.payouts import payout_batch_export_csv, payout_batch_run
from ledger.services import Line, account_for_payee, ledger_post, system_account
from marketplace.models import Provider
from marketplace.providers import (
    provider_connect_onboarding_start,
    provider_connect_refresh,
    provider_create,
)
from subscriptions.models import WebhookEvent
from tests.accounts.factories import UserFactory
from tests.marketplace.factories import ProviderFactory
from tests.stripe_harness import make_webhook_endpoint, post_signed_event

pytestmark = pytest.mark.django_db

PROFILE = "/api/v1/provider/profile"
ONBOARDING = "/api/v1/provider/onboarding"
CONNECT = "/api/v1/provider/onboarding/connect"
REFRESH = "/api/v1/provider/onboarding/refresh"
BANK = "/api/v1/provider/onboarding/bank"
RETURN = "https://app.example.com/onboarding/done"


@pytest.fixture(autouse=True)
def _front_end_origin(settings: Any) -> None:
    """The providers' front end, whose pages Stripe may send them back to (RedirectURLField)."""
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def profile_of(provider: Provider) -> PayeeProfile:
    return PayeeProfile.objects.get(payee_type=Account.PayeeType.PROVIDER, payee_id=provider.pk)


def complete_hosted_onboarding(url: str) -> None:
    """What the provider does on the (fake) Stripe-hosted page: press the button."""
    request = urllib.request.Request(url, data=b"", method="POST")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(request, timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 302, exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def account_updated_event(account: dict[str, Any], *, created: int) -> dict[str, Any]:
    return {
        "id": "evt_test_" + secrets.token_hex(8),
        "object": "event",
        "account": account["id"],
        "api_version": stripe.api_version,
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "account.updated",
        "data": {"object": account},
    }


# --- becoming a provider -------------------------------------------------------------------


def test_a_user_becomes_a_provider_once():
    user = UserFactory(password=None)
    client = client_for(user)

    assert client.get(PROFILE).status_code == 403
    created = client.post(PROFILE, {"display_name": "  Ada   Studio "}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["display_name"] == "Ada Studio"
    assert created.json()["status"] == "active"
    again = client.post(PROFILE, {"display_name": "Ada"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_provider"
    renamed = client.patch(PROFILE, {"display_name": "Ada Ltd"}, format="json")
    assert renamed.json()["display_name"] == "Ada Ltd"
    assert client.get(PROFILE).json()["id"] == created.json()["id"]
    assert APIClient().get(PROFILE).status_code == 401


def test_a_new_provider_has_no_payouts_set_up():
    provider = ProviderFactory(onboarded=False)
    body = client_for(provider.user).get(ONBOARDING).json()
    assert body["method"] == ""
    assert body["onboarding_complete"] is False
    assert body["payouts_enabled"] is False


# --- Stripe Connect Express ----------------------------------------------------------------


def test_connect_onboarding_creates_one_express_account_and_a_link_each_time(stripe_fake):
    provider = ProviderFactory(onboarded=False, display_name="Ada Studio")
    client = client_for(provider.user)

    first = client.post(CONNECT, {"return_url": RETURN, "refresh_url": RETURN}, format="json")
    assert first.status_code == 201, first.content
    assert "/_config/connect/onboarding/" in first.json()["url"]
    profile = profile_of(provider)
    assert profile.method == PayeeProfile.Method.STRIPE_CONNECT
    assert profile.stripe_account_id.startswith("acct_")
    assert profile.onboarding_complete is False
    account = stripe.Account.retrieve(profile.stripe_account_id)
    assert (account.type, account.email) == ("express", provider.user.email)
    assert account.business_profile.name == "Ada Studio"
    assert account.metadata["payee_type"] == "provider"

    second = client.post(CONNECT, {"return_url": RETURN}, format="json")
    assert second.status_code == 201
    assert second.json()["url"] != first.json()["url"]
    assert profile_of(provider).stripe_account_id == profile.stripe_account_id
    assert len(stripe.Account.list().data) == 1

    status = client.get(ONBOARDING).json()
    assert status["stripe_account_id"] == profile.stripe_account_id
    assert (status["onboarding_complete"], status["details_submitted"]) == (False, False)


def test_a_retried_request_with_the_same_idempotency_key_gets_the_same_link(stripe_fake):
    provider = ProviderFactory(onboarded=False)
    client = client_for(provider.user)
    body = {"return_url": RETURN, "refresh_url": RETURN}

    first = client.post(CONNECT, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    retry = client.post(CONNECT, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.json()["url"] == retry.json()["url"]


def test_a_country_stripe_refuses_is_a_400_naming_it(stripe_fake):
    provider = ProviderFactory(onboarded=False)
    response = client_for(provider.user).post(CONNECT, {"country": "U1"}, format="json")
    assert response.status_code == 400
    assert "country" in response.json()["error"]["fields"]
    assert not PayeeProfile.objects.filter(payee_id=provider.pk).exclude(stripe_account_id="")


def test_a_failed_account_create_is_retried_under_the_same_key_never_twice(stripe_fake):
    provider = ProviderFactory(onboarded=False)
    client = client_for(provider.user)
    stripe_fake.fail_next("POST", "/v1/accounts", when="after")

    down = client.post(CONNECT, {}, format="json")
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "stripe_unavailable"
    assert profile_of(provider).stripe_account_id == ""  # the claimed row outlives the failure

    # The account was created on Stripe's side; the retry sends the same idempotency key, so
    # Stripe answers what it saved for it (its 500) rather than creating a second account.
    assert client.post(CONNECT, {}, format="json").status_code == 503
    assert len(stripe.Account.list().data) == 1


def test_stripe_down_on_the_link_keeps_the_account_and_the_retry_gets_a_link(stripe_fake):
    provider = ProviderFactory(onboarded=False)
    client = client_for(provider.user)
    stripe_fake.fail_next("POST", "/v1/account_links")

    assert client.post(CONNECT, {}, format="json").status_code == 503
    account_id = profile_of(provider).stripe_account_id
    assert account_id.startswith("acct_")

    retry = client.post(CONNECT, {}, format="json")
    assert retry.status_code == 201
    assert profile_of(provider).stripe_account_id == account_id
    assert len(stripe.Account.list().data) == 1


def test_a_suspended_provider_cannot_start_onboarding(stripe_fake):
    provider = ProviderFactory(onboarded=False, status=Provider.Status.SUSPENDED)
    response = client_for(provider.user).post(CONNECT, {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "provider_suspended"


@pytest.mark.django_db(transaction=True)
def test_onboarding_on_the_hosted_page_comes_back_as_a_signed_account_updated(
    stripe_fake, live_server, celery_eager
):
    endpoint = make_webhook_endpoint(url=live_server.url + "/stripe/webhook/")
    stripe_fake.register_webhook(endpoint.url, endpoint.secret, connect=True)
    provider = ProviderFactory(onboarded=False)
    client = client_for(provider.user)
    link = client.post(CONNECT, {"return_url": RETURN}, format="json").json()

    complete_hosted_onboarding(link["url"])

    delivery = stripe_fake.wait_for_delivery(lambda d: d["type"] == "account.updated")
    assert delivery["status"] == 200
    event = WebhookEvent.objects.get(stripe_event_id=delivery["event"])
    deadline = time.monotonic() + 10
    while event.status != WebhookEvent.Status.SUCCEEDED and time.monotonic() < deadline:
        time.sleep(0.05)
        event.refresh_from_db()
    assert event.status == WebhookEvent.Status.SUCCEEDED, event.last_error
    profile = profile_of(provider)
    assert (profile.stripe_charges_enabled, profile.stripe_payouts_enabled) == (True, True)
    assert profile.stripe_details_submitted is True
    assert profile.onboarding_complete is True
    assert client.get(ONBOARDING).json()["onboarding_complete"] is True


def test_an_older_account_updated_delivered_late_does_not_undo_a_newer_one(
    stripe_fake, client, django_capture_on_commit_callbacks, celery_eager
):
    endpoint = make_webhook_endpoint()
    provider = ProviderFactory(onboarded=False)
    provider_connect_onboarding_start(provider=provider, return_url=RETURN, refresh_url=RETURN)
    account_id = profile_of(provider).stripe_account_id
    restricted = stripe.Account.retrieve(account_id).to_dict()
    enabled = {**restricted, "charges_enabled": True, "payouts_enabled": True}
    now = int(time.time())

    with django_capture_on_commit_callbacks(execute=True):
        newer = post_signed_event(client, endpoint, account_updated_event(enabled, created=now))
    assert newer.status_code == 200
    assert profile_of(provider).onboarding_complete is True

    with django_capture_on_commit_callbacks(execute=True):
        older = post_signed_event(
            client, endpoint, account_updated_event(restricted, created=now - 60)
        )
    assert older.status_code == 200
    assert WebhookEvent.objects.filter(status=WebhookEvent.Status.SUCCEEDED).count() == 2
    profile = profile_of(provider)
    assert profile.onboarding_complete is True
    assert profile.stripe_account_synced_at == datetime.fromtimestamp(now, tz=UTC)

    # A newer restriction (Stripe disabled payouts) applies.
    with django_capture_on_commit_callbacks(execute=True):
        post_signed_event(client, endpoint, account_updated_event(restricted, created=now + 5))
    assert profile_of(provider).onboarding_complete is False


def test_account_updated_reaches_every_payee_paid_through_that_account():
    one, two = ProviderFactory(onboarded=False), ProviderFactory(onboarded=False)
    for provider in (one, two):
        PayeeProfile.objects.create(
            payee_type="provider",
            payee_id=provider.pk,
            method=PayeeProfile.Method.STRIPE_CONNECT,
            stripe_account_id="acct_shared000001",
        )
    PayeeProfile.objects.create(
        payee_type="creator", payee_id=one.pk, stripe_account_id="acct_other0000001"
    )

    changed = payee_connect_account_sync(
        account={"id": "acct_shared000001", "payouts_enabled": True, "charges_enabled": True},
        as_of=timezone.now(),
    )

    assert sorted(p.payee_id for p in changed) == sorted([one.pk, two.pk])
    assert [profile_of(p).onboarding_complete for p in (one, two)] == [True, True]
    assert PayeeProfile.objects.get(payee_type="creator").stripe_payouts_enabled is False
    assert (
        payee_connect_account_sync(account={"id": "acct_unknown0001"}, as_of=timezone.now()) == []
    )


def test_refresh_reads_the_account_from_stripe(stripe_fake):
    provider = ProviderFactory(onboarded=False)
    client = client_for(provider.user)
    assert client.post(REFRESH).json()["onboarding_complete"] is False  # nothing set up yet
    link = client.post(CONNECT, {"return_url": RETURN}, format="json").json()
    complete_hosted_onboarding(link["url"])

    # No webhook endpoint here: the provider is back before Stripe told us.
    assert client.get(ONBOARDING).json()["onboarding_complete"] is False
    refreshed = client.post(REFRESH)
    assert refreshed.status_code == 200
    assert refreshed.json()["onboarding_complete"] is True
    assert refreshed.json()["payouts_enabled"] is True


# --- bank details (CSV payouts) ------------------------------------------------------------


def test_bank_details_complete_onboarding_for_csv_payouts():
    provider = ProviderFactory(onboarded=False)
    client = client_for(provider.user)

    response = client.put(
        BANK,
        {"account_name": " Ada  Studio ", "iban": "de89 3704 0044 0532 0130 00", "bic": "cobadeff"},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["method"], body["onboarding_complete"]) == ("bank_csv", True)
    assert (body["bank_account_name"], body["bank_iban_last4"]) == ("Ada Studio", "3000")
    profile = profile_of(provider)
    assert (profile.bank_iban, profile.bank_bic) == ("DE89370400440532013000", "COBADEFF")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"account_name": "A", "iban": "DE89370400440532013001"}, "iban"),  # bad checksum
        ({"account_name": "A", "iban": "XX"}, "iban"),
        ({"account_name": "   ", "iban": "DE89370400440532013000"}, "account_name"),
        ({"account_name": "A", "iban": "DE89370400440532013000", "bic": "NOTABIC"}, "bic"),
    ],
)
def test_bad_bank_details_are_400_naming_the_field(payload, field):
    provider = ProviderFactory(onboarded=False)
    response = client_for(provider.user).put(BANK, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not PayeeProfile.objects.filter(payee_id=provider.pk).exists()


def test_iban_check_digits():
    assert iban_is_valid("GB82WEST12345698765432")
    assert not iban_is_valid("GB82WEST12345698765433")
    assert not iban_is_valid("gb82WEST12345698765432")


def test_provider_create_service_refuses_a_second_profile():
    user = UserFactory(password=None)
    provider_create(user=user, display_name="One")
    with pytest.raises(Exception, match="already a provider"):
        provider_create(user=user, display_name="Two")


# --- paid by the shared payout engine ------------------------------------------------------


def test_providers_are_paid_by_transfer_on_connect_and_in_the_csv_by_bank(stripe_fake):
    connect = ProviderFactory(onboarded=False)
    bank = ProviderFactory()  # bank details
    link = provider_connect_onboarding_start(
        provider=connect, return_url=RETURN, refresh_url=RETURN
    )
    complete_hosted_onboarding(link["url"])
    provider_connect_refresh(provider=connect)  # back from onboarding (or account.updated)
    for provider, amount in ((connect, 8000), (bank, 4500)):
        ledger_post(
            idempotency_key=f"earned-{provider.pk}",
            source="tests.provider_earnings",
            lines=[
                Line.debit(system_account(SystemAccount.STRIPE_CLEARING), amount, "usd"),
                Line.credit(
                    account_for_payee(payee_type="provider", payee_id=provider.pk), amount, "usd"
                ),
            ],
            posted_at=timezone.now() - timedelta(days=2),
        )

    batch = payout_batch_run(payee_type="provider", as_of=timezone.now().date())

    by_payee = {p.payee_id: p for p in batch.payouts.all()}
    assert (by_payee[connect.pk].method, by_payee[connect.pk].status) == ("stripe_connect", "paid")
    (transfer,) = stripe.Transfer.list(destination=profile_of(connect).stripe_account_id).data
    assert (transfer.amount, transfer.currency) == (8000, "usd")
    assert (by_payee[bank.pk].method, by_payee[bank.pk].status) == ("bank_csv", "paid")
    assert payout_batch_export_csv(batch=batch).startswith("DE89370400440532013000,45.00,USD,")
