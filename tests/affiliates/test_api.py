from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from affiliates.models import ReferralLink
from ledger.models import PayeeProfile, Payout, PayoutBatch
from tests.accounts.factories import UserFactory
from tests.affiliates.factories import (
    AffiliateFactory,
    ClickFactory,
    CommissionFactory,
    ReferralFactory,
    ReferralLinkFactory,
)

pytestmark = pytest.mark.django_db

BASE = "/api/v1/affiliate/"


def _client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def affiliate():
    return AffiliateFactory()


@pytest.fixture
def api(affiliate):
    return _client(affiliate.user)


@pytest.mark.parametrize(
    "path", ["me", "links", "commissions", "payouts", "stats", "payout-settings"]
)
def test_anonymous_401_and_non_affiliate_403(path):
    response = APIClient().get(BASE + path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    response = _client(UserFactory()).get(BASE + path)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_pending_affiliate_is_403():
    response = _client(AffiliateFactory(status="pending").user).get(BASE + "me")
    assert response.status_code == 403


def test_me(api, affiliate):
    body = api.get(BASE + "me").json()
    assert body["id"] == affiliate.pk
    assert body["email"] == affiliate.user.email
    assert body["status"] == "approved"
    assert body["currency"] == "usd"


def test_links_list_create_detail_and_isolation(api, affiliate, django_assert_max_num_queries):
    for link in ReferralLinkFactory.create_batch(3, affiliate=affiliate):
        ClickFactory.create_batch(2, link=link)
    theirs = ReferralLinkFactory()
    with django_assert_max_num_queries(6):
        body = api.get(BASE + "links").json()
    assert body["count"] == 3
    assert {r["click_count"] for r in body["results"]} == {2}
    assert body["results"][0]["url"].startswith("http://testserver/r/")

    response = api.post(BASE + "links", {"campaign": "c1", "landing_path": "/pricing"})
    assert response.status_code == 201
    created = response.json()
    assert created["campaign"] == "c1"
    assert created["click_count"] == 0
    assert ReferralLink.objects.get(pk=created["id"]).affiliate_id == affiliate.pk

    response = api.post(BASE + "links", {"landing_path": "https://evil.example"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"].keys() == {"landing_path"}

    assert api.get(f"{BASE}links/{created['id']}").status_code == 200
    response = api.get(f"{BASE}links/{theirs.pk}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_commissions_list_filters_detail_isolation(api, affiliate, django_assert_max_num_queries):
    referral = ReferralFactory(affiliate=affiliate)
    CommissionFactory.create_batch(5, referral=referral, status="held")
    paid = CommissionFactory(referral=referral, status="paid", amount=999)
    theirs = CommissionFactory(status="paid")
    with django_assert_max_num_queries(6):
        body = api.get(BASE + "commissions").json()
    assert body["count"] == 6
    body = api.get(BASE + "commissions", {"status": "paid"}).json()
    assert [r["id"] for r in body["results"]] == [paid.pk]
    assert body["results"][0]["amount"] == 999
    today = timezone.localdate().isoformat()
    assert api.get(BASE + "commissions", {"date_from": today}).json()["count"] == 6
    assert api.get(BASE + "commissions", {"date_to": "2000-01-01"}).json()["count"] == 0
    response = api.get(BASE + "commissions", {"status": "bogus"})
    assert response.status_code == 400
    assert "status" in response.json()["error"]["fields"]
    assert api.get(f"{BASE}commissions/{paid.pk}").json()["status"] == "paid"
    assert api.get(f"{BASE}commissions/{theirs.pk}").status_code == 404


def test_payouts_only_own(api, affiliate, django_assert_max_num_queries):
    batch = PayoutBatch.objects.create(payee_type="affiliate", as_of=timezone.localdate())
    mine = Payout.objects.create(
        batch=batch,
        payee_type="affiliate",
        payee_id=affiliate.pk,
        amount=100,
        currency="usd",
        method="paypal",
    )
    Payout.objects.create(
        batch=batch,
        payee_type="creator",
        payee_id=affiliate.pk,
        amount=100,
        currency="usd",
        method="paypal",
    )
    with django_assert_max_num_queries(6):
        body = api.get(BASE + "payouts").json()
    assert [r["id"] for r in body["results"]] == [mine.pk]
    assert body["results"][0]["as_of"] == batch.as_of.isoformat()


def test_stats(api, affiliate):
    link = ReferralLinkFactory(affiliate=affiliate)
    ClickFactory.create_batch(2, link=link)
    CommissionFactory(referral=ReferralFactory(affiliate=affiliate), amount=250)
    body = api.get(BASE + "stats").json()
    assert body["clicks"] == 2
    assert body["signups"] == 1
    assert body["conversions"] == 1
    assert body["conversion_rate"] == "50.00"
    assert body["earnings"]["usd"]["held"] == 250
    assert len(body["series"]) == 90


def test_payout_settings_get_put(api, affiliate):
    assert api.get(BASE + "payout-settings").json()["method"] == ""
    response = api.put(
        BASE + "payout-settings", {"method": "paypal", "paypal_email": "x"}, format="json"
    )
    assert response.status_code == 400
    assert "paypal_email" in response.json()["error"]["fields"]
    response = api.put(
        BASE + "payout-settings",
        {"method": "stripe_connect", "stripe_account_id": "acct_1234567890"},
        format="json",
    )
    assert response.status_code == 200
    assert api.get(BASE + "payout-settings").json()["stripe_account_id"] == "acct_1234567890"
    assert PayeeProfile.objects.get(payee_id=affiliate.pk).method == "stripe_connect"


def test_schema_includes_affiliate_endpoints(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/affiliate/commissions/{id}" in response.content
