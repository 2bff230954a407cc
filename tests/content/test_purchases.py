"""Buying a one-time licence through the API, against the fake Stripe; the split in the ledger;
refunds and lost disputes revoking the licence and reversing the split."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.db import connection
from django.db.models import Sum
from djstripe import models as djm
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from content.models import License, LicenseType
from content.purchases import SALE_SOURCE, license_sale_split
from content.services import content_shares_set, license_key_hash
from ledger.chart import SystemAccount
from ledger.models import Account, Entry, Transaction
from tests.accounts.factories import UserFactory
from tests.content.factories import ContentItemFactory, CreatorFactory, LicenseTypeFactory
from tests.subscriptions.effects_helpers import EventFeed, key

pytestmark = pytest.mark.django_db

MINE = "/api/v1/content/licenses/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def buy_url(item) -> str:
    return f"/api/v1/content/{item.pk}/licenses/"


def balance(code: str) -> int:
    return Entry.objects.filter(account__code=code).aggregate(t=Sum("amount"))["t"] or 0


def creator_balance(creator) -> int:
    return (
        Entry.objects.filter(
            account__payee_type=Account.PayeeType.CREATOR, account__payee_id=creator.pk
        ).aggregate(t=Sum("amount"))["t"]
        or 0
    )


CLEARING = SystemAccount.STRIPE_CLEARING.value
REVENUE = SystemAccount.REVENUE_CONTENT.value


def three_creator_item(*, fee: str = "20.00"):
    owner = CreatorFactory(platform_fee_percent=Decimal(fee))
    a, b = CreatorFactory(), CreatorFactory()
    item = ContentItemFactory(owner=owner)
    content_shares_set(
        item=item,
        shares=[(owner, Decimal("33.34")), (a, Decimal("33.33")), (b, Decimal("33.33"))],
    )
    return item, (owner, a, b)


# --- the split -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    amount=st.one_of(st.sampled_from([0, 1, 2, 3, 999, 1000, 10**12]), st.integers(0, 10**9)),
    fee=st.decimals(min_value=0, max_value=100, places=2),
    shares=st.sampled_from(
        [
            [Decimal("33.33"), Decimal("33.33"), Decimal("33.34")],
            [Decimal(100)],
            [Decimal("0.0001"), Decimal("99.9999")],
            [Decimal("50"), Decimal("25"), Decimal("12.5"), Decimal("12.5")],
        ]
    ),
)
def test_the_split_adds_up_exactly_and_no_part_is_negative(amount, fee, shares):
    split = license_sale_split(
        amount=amount, platform_fee_percent=fee, shares=list(enumerate(shares, start=1))
    )
    parts = [split.platform, *(part for _, part in split.creators)]
    assert sum(parts) == amount
    assert all(part >= 0 for part in parts)
    # No creator gets more than their share of what the platform leaves them.
    creators_total = sum(part for _, part in split.creators)
    assert creators_total <= amount * (100 - fee) / 100


def test_999_split_three_ways_at_20_percent():
    split = license_sale_split(
        amount=999,
        platform_fee_percent=Decimal(20),
        shares=[(1, Decimal("33.34")), (2, Decimal("33.33")), (3, Decimal("33.33"))],
    )
    # creators: 999 * 0.8 = 799.2 -> 799; platform 200; 799 by 33.34/33.33/33.33.
    assert split.platform == 200
    assert split.creators == [(1, 267), (2, 266), (3, 266)]


# --- purchase through the API --------------------------------------------------------------


def test_buying_a_licence_activates_it_returns_the_key_once_and_splits_the_sale(stripe_fake):
    item, (owner, a, b) = three_creator_item()
    personal = LicenseTypeFactory(item=item, amount=999, term_days=30, limits={"downloads": 5})
    buyer = UserFactory(password=None)

    response = client_for(buyer).post(
        buy_url(item), {"license_type": personal.pk, "payment_method": "pm_card_visa"}, "json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "active"
    assert body["key"].startswith(body["key_prefix"] + "_")
    assert body["limits"] == {"downloads": 5}
    license = License.objects.get(pk=body["id"])
    assert license.key_hash == license_key_hash(body["key"])
    assert license.expires_at == license.issued_at + timedelta(days=30)
    intent = stripe.PaymentIntent.retrieve(license.stripe_payment_intent_id)
    assert (intent.amount, intent.currency, intent.status) == (999, "usd", "succeeded")
    assert intent.metadata["content_license"] == str(license.pk)

    assert balance(CLEARING) == 999
    assert balance(REVENUE) == -200
    assert [creator_balance(c) for c in (owner, a, b)] == [-267, -266, -266]

    # The webhook arriving later changes nothing.
    EventFeed().process_new()
    assert Transaction.objects.filter(source=SALE_SOURCE).count() == 1
    assert [creator_balance(c) for c in (owner, a, b)] == [-267, -266, -266]
    assert License.objects.get(pk=license.pk).status == License.Status.ACTIVE

    listed = client_for(buyer).get(MINE).json()
    assert listed["count"] == 1
    row = listed["results"][0]
    assert "key" not in row
    assert row["key_prefix"] == body["key_prefix"]
    assert row["content"] == item.pk and row["license_type"] == personal.pk
    assert client_for(UserFactory(password=None)).get(MINE).json()["count"] == 0


def test_a_zero_decimal_currency_splits_in_whole_yen(stripe_fake):
    item, creators = three_creator_item(fee="15.00")
    jpy = LicenseTypeFactory(item=item, amount=1001, currency="jpy")
    response = client_for(UserFactory(password=None)).post(
        buy_url(item), {"license_type": jpy.pk, "payment_method": "pm_card_visa"}, "json"
    )
    assert response.status_code == 201, response.content
    # 1001 * 0.85 = 850.85 -> 850 to creators, 151 to the platform.
    assert balance(REVENUE) == -151
    assert sorted(creator_balance(c) for c in creators) == [-284, -283, -283]
    assert Entry.objects.filter(currency="jpy").aggregate(t=Sum("amount"))["t"] == 0


def test_the_item_override_fee_wins_over_the_creators():
    item = ContentItemFactory(platform_fee_percent=Decimal(50))
    assert item.effective_platform_fee_percent == Decimal(50)


def test_a_declined_card_answers_402_and_leaves_no_licence(stripe_fake):
    lt = LicenseTypeFactory()
    response = client_for(UserFactory(password=None)).post(
        buy_url(lt.item),
        {"license_type": lt.pk, "payment_method": "pm_card_chargeDeclined"},
        "json",
    )
    assert response.status_code == 402, response.content
    assert response.json()["error"]["code"] == "card_declined"
    assert not License.objects.exists()
    assert not Entry.objects.exists()


@pytest.mark.parametrize("case", ["unknown", "inactive", "other_item", "recurring_price_gone"])
def test_a_licence_type_not_on_sale_is_400_naming_it(stripe_fake, case):
    # Recurring and per-use types are sold too (tests/content/test_recurring.py and
    # test_royalties.py); a recurring one whose Stripe Price is gone is not on sale.
    item = ContentItemFactory()
    lt = {
        "unknown": None,
        "inactive": LicenseTypeFactory(item=item, is_active=False),
        "other_item": LicenseTypeFactory(),
        "recurring_price_gone": LicenseTypeFactory(
            item=item, pricing=LicenseType.Pricing.RECURRING, stripe_price_id="price_x"
        ),
    }[case]
    response = client_for(UserFactory(password=None)).post(
        buy_url(item),
        {"license_type": lt.pk if lt else 999999, "payment_method": "pm_card_visa"},
        "json",
    )
    assert response.status_code == 400, response.content
    assert "license_type" in response.json()["error"]["fields"]
    assert not License.objects.exists()


def test_missing_fields_unpublished_items_and_anonymous_buyers_are_refused(stripe_fake):
    lt = LicenseTypeFactory(item=ContentItemFactory(status="draft", published_at=None))
    client = client_for(UserFactory(password=None))
    assert client.post(buy_url(lt.item), {"license_type": lt.pk}, "json").status_code == 400
    response = client.post(
        buy_url(lt.item), {"license_type": lt.pk, "payment_method": "pm_card_visa"}, "json"
    )
    assert response.status_code == 404
    assert APIClient().post(buy_url(lt.item), {}, "json").status_code == 401
    assert APIClient().get(MINE).status_code == 401
    assert not License.objects.exists()


def test_a_second_buyer_of_an_exclusive_licence_gets_409_before_any_charge(stripe_fake):
    exclusive = LicenseTypeFactory(kind=LicenseType.Kind.EXCLUSIVE, amount=50000)
    data = {"license_type": exclusive.pk, "payment_method": "pm_card_visa"}
    first = client_for(UserFactory(password=None)).post(buy_url(exclusive.item), data, "json")
    assert first.status_code == 201
    intents_before = len(stripe.PaymentIntent.list(limit=100).data)

    second = client_for(UserFactory(password=None)).post(buy_url(exclusive.item), data, "json")

    assert second.status_code == 409, second.content
    assert second.json()["error"]["code"] == "license_taken"
    assert len(stripe.PaymentIntent.list(limit=100).data) == intents_before
    assert License.objects.count() == 1


def test_a_declined_exclusive_purchase_frees_the_licence_for_the_next_buyer(stripe_fake):
    exclusive = LicenseTypeFactory(kind=LicenseType.Kind.EXCLUSIVE)
    declined = client_for(UserFactory(password=None)).post(
        buy_url(exclusive.item),
        {"license_type": exclusive.pk, "payment_method": "pm_card_chargeDeclined"},
        "json",
    )
    assert declined.status_code == 402
    ok = client_for(UserFactory(password=None)).post(
        buy_url(exclusive.item),
        {"license_type": exclusive.pk, "payment_method": "pm_card_visa"},
        "json",
    )
    assert ok.status_code == 201 and ok.json()["status"] == "active"


def test_the_list_is_a_bounded_number_of_queries(stripe_fake, django_assert_max_num_queries):
    buyer = UserFactory(password=None)
    for _ in range(3):
        lt = LicenseTypeFactory()
        client_for(buyer).post(
            buy_url(lt.item), {"license_type": lt.pk, "payment_method": "pm_card_visa"}, "json"
        )
    client = client_for(buyer)
    with django_assert_max_num_queries(4):
        assert client.get(MINE).json()["count"] == 3


# --- lifecycle -----------------------------------------------------------------------------


def _buy(item, lt, card: str = "pm_card_visa") -> License:
    response = client_for(UserFactory(password=None)).post(
        buy_url(item), {"license_type": lt.pk, "payment_method": card}, "json"
    )
    assert response.status_code == 201, response.content
    return License.objects.get(pk=response.json()["id"])


def test_a_full_refund_revokes_the_licence_and_reverses_every_split(stripe_fake):
    item, creators = three_creator_item()
    license = _buy(item, LicenseTypeFactory(item=item, amount=999))
    feed = EventFeed()
    feed.process_new()
    stripe.Refund.create(payment_intent=license.stripe_payment_intent_id, idempotency_key=key("re"))

    events = feed.process_new()
    assert "charge.refunded" in {e["type"] for e in events}
    license.refresh_from_db()
    assert license.status == License.Status.REVOKED
    assert balance(REVENUE) == 0
    assert [creator_balance(c) for c in creators] == [0, 0, 0]

    # Redelivered: nothing more.
    entries = Entry.objects.count()
    for event in events:
        djm.Event.process(event)
    assert Entry.objects.count() == entries


def test_a_partial_refund_reverses_its_share_and_keeps_the_licence(stripe_fake):
    item, creators = three_creator_item(fee="0.00")
    license = _buy(item, LicenseTypeFactory(item=item, amount=1000))
    feed = EventFeed()
    feed.process_new()
    stripe.Refund.create(
        payment_intent=license.stripe_payment_intent_id, amount=300, idempotency_key=key("re")
    )
    feed.process_new()
    license.refresh_from_db()
    assert license.status == License.Status.ACTIVE
    assert sum(creator_balance(c) for c in creators) == -700

    stripe.Refund.create(payment_intent=license.stripe_payment_intent_id, idempotency_key=key("re"))
    feed.process_new()
    license.refresh_from_db()
    assert license.status == License.Status.REVOKED
    assert [creator_balance(c) for c in creators] == [0, 0, 0]


def test_a_lost_dispute_revokes_the_licence_and_reverses_the_split(stripe_fake):
    item, creators = three_creator_item()
    license = _buy(item, LicenseTypeFactory(item=item, amount=2500), card="pm_card_createDispute")
    feed = EventFeed()
    feed.process_new()
    # Opened: Stripe withdrew the funds, the licence is suspended and the split reversed.
    assert License.objects.get(pk=license.pk).status == License.Status.SUSPENDED
    assert [creator_balance(c) for c in creators] == [0, 0, 0]
    dispute = stripe.Dispute.list(limit=1).data[0]
    stripe.Dispute.close(dispute.id)

    events = feed.process_new()
    assert "charge.dispute.closed" in {e["type"] for e in events}
    license.refresh_from_db()
    assert license.status == License.Status.REVOKED
    assert balance(REVENUE) == 0
    assert [creator_balance(c) for c in creators] == [0, 0, 0]
    entries = Entry.objects.count()
    for event in events:
        djm.Event.process(event)
    assert Entry.objects.count() == entries


# --- the exclusive race (PostgreSQL: two requests in two threads) ----------------------------


@pytest.mark.django_db(transaction=True)
def test_two_buyers_racing_for_an_exclusive_licence_one_wins_the_other_is_not_charged(
    stripe_fake,
):
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    exclusive = LicenseTypeFactory(kind=LicenseType.Kind.EXCLUSIVE, amount=70000)
    buyers = [UserFactory(password=None), UserFactory(password=None)]
    data = {"license_type": exclusive.pk, "payment_method": "pm_card_visa"}
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def buy(user) -> None:
        try:
            client = client_for(user)
            barrier.wait()
            codes.append(client.post(buy_url(exclusive.item), data, "json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=buy, args=(user,)) for user in buyers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(codes) == [201, 409]
    assert License.objects.get().status == License.Status.ACTIVE
    intents = stripe.PaymentIntent.list(limit=100).data
    assert [(i.amount, i.status) for i in intents] == [(70000, "succeeded")]


def test_a_payment_for_a_licence_that_no_longer_exists_is_refunded_at_once(stripe_fake):
    # E.g. the purchase saw Stripe time out and dropped its pending licence, but the charge
    # went through: the buyer must not be left charged.
    intent = stripe.PaymentIntent.create(
        amount=1200,
        currency="usd",
        payment_method="pm_card_visa",
        payment_method_types=["card"],
        confirm=True,
        metadata={"content_license": "987654"},
        idempotency_key=key("pi"),
    )
    EventFeed().process_new()

    refunds = stripe.Refund.list(payment_intent=intent.id).data
    assert [(r.amount, r.status) for r in refunds] == [(1200, "succeeded")]
    assert not Transaction.objects.filter(source=SALE_SOURCE).exists()
