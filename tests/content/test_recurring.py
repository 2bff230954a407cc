"""Recurring licences against the fake Stripe: the licence type's Price pushed once, a purchase
starting a Subscription, each paid invoice (renewals included) split once to the creators as
content revenue (never SaaS revenue), cancellation ending the licence at the end of the period
paid for, refunds reversing that invoice's split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import stripe
from django.conf import settings as django_settings
from django.db.models import Sum
from rest_framework.test import APIClient

from content import licensing, royalties
from content.acquire import pending_licenses_release
from content.earnings import creator_earnings, earnings_row
from content.models import License, LicenseType
from content.services import content_shares_set, license_type_create, license_type_update
from ledger.chart import SystemAccount
from ledger.models import Account, Entry, Transaction
from subscriptions.models import BillingCustomer, Plan, PlanPrice
from tests.accounts.factories import UserFactory
from tests.content.factories import ContentItemFactory, CreatorFactory
from tests.devstripe.clock_helpers import DAY, FEB_1, JAN_1, MAR_1, advance, make_clock
from tests.stripe_harness import three_d_secure_card
from tests.subscriptions.effects_helpers import EventFeed, key

pytestmark = pytest.mark.django_db

CONTENT = SystemAccount.REVENUE_CONTENT.value
SAAS = SystemAccount.REVENUE_SUBSCRIPTIONS.value


def at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def balance(code: str) -> int:
    return Entry.objects.filter(account__code=code).aggregate(t=Sum("amount"))["t"] or 0


def creator_balance(creator) -> int:
    return (
        Entry.objects.filter(
            account__payee_type=Account.PayeeType.CREATOR, account__payee_id=creator.pk
        ).aggregate(t=Sum("amount"))["t"]
        or 0
    )


def owner_earnings(creator) -> list[tuple]:
    """(content id, sales, royalties, reversals, net) per row of the creator's earnings."""
    return [
        (row["content_id"], row["sales"], row["royalties"], row["reversals"], row["net"])
        for row in map(earnings_row, creator_earnings(creator=creator))
    ]


def three_creator_item():
    owner = CreatorFactory(platform_fee_percent=Decimal(20))
    a, b = CreatorFactory(), CreatorFactory()
    item = ContentItemFactory(owner=owner)
    content_shares_set(
        item=item,
        shares=[(owner, Decimal("33.34")), (a, Decimal("33.33")), (b, Decimal("33.33"))],
    )
    return item, (owner, a, b)


def recurring_type(item, **values) -> LicenseType:
    values = {"kind": "commercial", "pricing": "recurring", "amount": 999, "currency": "usd"} | (
        values
    )
    return license_type_create(item=item, **values)


def buy(buyer, item, license_type, payment_method: str = "pm_card_visa"):
    client = APIClient()
    client.force_authenticate(buyer)
    return client.post(
        f"/api/v1/content/{item.pk}/licenses/",
        {"license_type": license_type.pk, "payment_method": payment_method},
        "json",
    )


def on_clock(user, frozen_time: int = JAN_1):
    clock = make_clock(frozen_time)
    customer = stripe.Customer.create(
        email=user.email, test_clock=clock.id, idempotency_key=key("cus")
    )
    BillingCustomer.objects.create(user=user, stripe_customer_id=customer.id)
    return clock


def test_the_licence_types_price_is_pushed_once_and_is_not_a_saas_plan(stripe_fake):
    item, _ = three_creator_item()
    yearly = recurring_type(item, recurring_interval="year")

    price = stripe.Price.retrieve(yearly.stripe_price_id)
    assert (price.unit_amount, price.currency, price.recurring.interval) == (999, "usd", "year")
    assert price.metadata["stream"] == "content"
    EventFeed().process_new()  # product.created, price.created
    assert not Plan.objects.exists() and not PlanPrice.objects.exists()

    same = license_type_update(license_type=yearly, is_active=True)
    assert same.stripe_price_id == price.id
    repriced = license_type_update(license_type=yearly, amount=1299)
    assert repriced.stripe_price_id not in ("", price.id)
    assert stripe.Price.retrieve(repriced.stripe_price_id).unit_amount == 1299
    one_time = license_type_update(license_type=repriced, pricing="one_time")
    assert one_time.stripe_price_id == ""


def test_subscribe_renew_cancel_each_paid_invoice_split_once_then_expiry(stripe_fake):
    item, (owner, a, b) = three_creator_item()
    monthly = recurring_type(item, limits={"downloads": 3})
    buyer = UserFactory(password=None)
    clock = on_clock(buyer)

    response = buy(buyer, item, monthly)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["amount"], body["expires_at"]) == ("active", 999, None)
    license = License.objects.get(pk=body["id"])
    subscription = stripe.Subscription.retrieve(license.stripe_subscription_id)
    assert subscription.status == "active"
    assert subscription.metadata["content_license"] == str(license.pk)
    assert licensing.license_verify(key=body["key"]).status == "valid"

    feed = EventFeed()
    feed.process_new()

    license.refresh_from_db()
    assert license.paid_through == at(FEB_1)
    # Booked as content revenue: 200 fee; 799 to the creators (267/266/266). Never SaaS.
    assert balance(CONTENT) == -200
    assert [creator_balance(c) for c in (owner, a, b)] == [-267, -266, -266]
    assert balance(SAAS) == 0
    assert Transaction.objects.filter(source=royalties.SPLIT_SOURCE).count() == 1

    # The renewal is booked again, under its own invoice.
    advance(clock, FEB_1 + DAY)
    feed.process_new()
    assert Transaction.objects.filter(source=royalties.SPLIT_SOURCE).count() == 2
    assert [creator_balance(c) for c in (owner, a, b)] == [-534, -532, -532]
    assert balance(CONTENT) == -400 and balance(SAAS) == 0
    license.refresh_from_db()
    assert (license.status, license.paid_through) == ("active", at(MAR_1))

    # Cancelled at the period end: the licence ends with the period paid for.
    stripe.Subscription.modify(
        license.stripe_subscription_id, cancel_at_period_end=True, idempotency_key=key("cancel")
    )
    feed.process_new()
    license.refresh_from_db()
    assert (license.status, license.expires_at) == ("active", at(MAR_1))

    advance(clock, MAR_1 + DAY)
    feed.process_new()
    assert stripe.Subscription.retrieve(license.stripe_subscription_id).status == "canceled"
    license.refresh_from_db()
    assert license.expires_at == at(MAR_1)
    assert Transaction.objects.filter(source=royalties.SPLIT_SOURCE).count() == 2  # no renewal
    assert licensing.licenses_expire_due(now=at(MAR_1) + timedelta(seconds=1)) == 1
    assert License.objects.get(pk=license.pk).status == License.Status.EXPIRED


def test_an_immediate_cancellation_keeps_the_licence_until_the_period_paid_for_ends(
    stripe_fake,
):
    item, _ = three_creator_item()
    buyer = UserFactory(password=None)
    body = buy(buyer, item, recurring_type(item)).json()
    feed = EventFeed()
    feed.process_new()
    license = License.objects.get(pk=body["id"])
    paid_through = license.paid_through
    assert paid_through is not None

    stripe.Subscription.cancel(license.stripe_subscription_id, idempotency_key=key("now"))
    feed.process_new()

    license.refresh_from_db()
    assert (license.status, license.expires_at) == ("active", paid_through)
    licensing.licenses_expire_due(now=paid_through)
    assert License.objects.get(pk=license.pk).status == License.Status.EXPIRED


def test_a_refund_of_a_licence_invoice_reverses_its_split_pro_rata(stripe_fake):
    item, creators = three_creator_item()
    buyer = UserFactory(password=None)
    body = buy(buyer, item, recurring_type(item)).json()
    feed = EventFeed()
    feed.process_new()
    license = License.objects.get(pk=body["id"])
    invoice_id = stripe.Subscription.retrieve(license.stripe_subscription_id).latest_invoice
    invoice = stripe.Invoice.retrieve(invoice_id, expand=["payments"])
    intent = invoice.payments.data[0].payment.payment_intent

    stripe.Refund.create(payment_intent=intent, amount=333, idempotency_key=key("re"))
    feed.process_new()

    # A third refunded: 799 * 333 / 999 = 266.3 → 266 of the creators' shares back.
    assert sum(creator_balance(c) for c in creators) == -(799 - 266)
    # revenue.content: -999 + 799 (moved), +333 refunded, -266 back from the creators.
    assert balance(CONTENT) == -200 + 333 - 266
    feed.process_new()  # nothing new
    assert Transaction.objects.filter(source=royalties.SPLIT_REFUND_SOURCE).count() == 1


def test_a_declined_first_payment_leaves_no_licence_and_no_subscription(stripe_fake):
    item, _ = three_creator_item()
    buyer = UserFactory(password=None)

    response = buy(buyer, item, recurring_type(item), "pm_card_chargeDeclined")

    assert response.status_code == 402, response.content
    assert not License.objects.exists()
    customer = BillingCustomer.objects.get(user=buyer).stripe_customer_id
    assert not stripe.Subscription.list(customer=customer).data


def test_a_card_that_needs_authentication_waits_for_it_then_is_split_once(stripe_fake):
    """Stripe refuses ``error_if_incomplete`` when the first payment needs 3-D Secure; the
    subscription is then created ``default_incomplete`` and the buyer confirms it in their
    browser with the client secret of the answer."""
    item, creators = three_creator_item()
    exclusive = recurring_type(item, kind="exclusive")
    buyer = UserFactory(password=None)
    card = three_d_secure_card()

    response = buy(buyer, item, exclusive, card)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending"
    license = License.objects.get(pk=body["id"])
    subscription = stripe.Subscription.retrieve(
        license.stripe_subscription_id, expand=["latest_invoice.confirmation_secret"]
    )
    assert subscription.status == "incomplete"
    secret = subscription.latest_invoice.confirmation_secret.client_secret
    assert body["payment"]["client_secret"] == secret
    assert secret.startswith(body["payment"]["payment_intent"] + "_secret_")
    assert licensing.license_verify(key=body["key"]).status == "unknown"
    assert buy(UserFactory(password=None), item, exclusive).status_code == 409  # held meanwhile
    feed = EventFeed()
    feed.process_new()
    assert Transaction.objects.filter(source=royalties.SPLIT_SOURCE).count() == 0

    # What Stripe.js does with the answer: confirm the first invoice's payment with the card,
    # then the 3-D Secure step.
    stripe.PaymentIntent.confirm(body["payment"]["payment_intent"], payment_method=card)
    stripe_fake.authenticate(
        body["payment"]["payment_intent"], client_secret=body["payment"]["client_secret"]
    )
    feed.process_new()

    license.refresh_from_db()
    assert license.status == License.Status.ACTIVE
    assert stripe.Subscription.retrieve(license.stripe_subscription_id).status == "active"
    assert licensing.license_verify(key=body["key"]).status == "valid"
    assert Transaction.objects.filter(source=royalties.SPLIT_SOURCE).count() == 1
    assert [creator_balance(c) for c in creators] == [-267, -266, -266]
    assert balance(CONTENT) == -200


def test_an_unconfirmed_subscription_is_canceled_after_the_wait_and_frees_the_item(stripe_fake):
    item, _ = three_creator_item()
    exclusive = recurring_type(item, kind="exclusive")
    body = buy(UserFactory(password=None), item, exclusive, three_d_secure_card()).json()
    license = License.objects.get(pk=body["id"])
    feed = EventFeed()
    feed.process_new()
    wait = timedelta(minutes=django_settings.CONTENT_PENDING_PAYMENT_MINUTES)

    assert pending_licenses_release(now=license.created_at + wait - timedelta(minutes=1)) == 0
    assert pending_licenses_release(now=license.created_at + wait + timedelta(minutes=1)) == 1

    assert stripe.Subscription.retrieve(license.stripe_subscription_id).status == "canceled"
    license.refresh_from_db()
    assert license.status == License.Status.EXPIRED
    feed.process_new()  # customer.subscription.deleted: nothing more to do
    license.refresh_from_db()
    assert license.status == License.Status.EXPIRED
    assert Transaction.objects.filter(source=royalties.SPLIT_SOURCE).count() == 0
    assert buy(UserFactory(password=None), item, exclusive).status_code == 201


def test_a_declined_card_that_would_need_no_authentication_is_still_402(stripe_fake):
    item, _ = three_creator_item()
    buyer = UserFactory(password=None)
    response = buy(buyer, item, recurring_type(item), "pm_card_chargeDeclined")
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "card_declined"
    assert not License.objects.exists()


def test_an_exclusive_recurring_licence_has_one_holder(stripe_fake):
    item, _ = three_creator_item()
    exclusive = recurring_type(item, kind="exclusive")
    assert buy(UserFactory(password=None), item, exclusive).status_code == 201
    response = buy(UserFactory(password=None), item, exclusive)
    assert response.status_code == 409, response.content
    assert License.objects.count() == 1


def test_a_dispute_reverses_the_split_and_winning_it_books_it_back(stripe_fake):
    item, creators = three_creator_item()
    buyer = UserFactory(password=None)
    assert buy(buyer, item, recurring_type(item), "pm_card_createDispute").status_code == 201
    feed = EventFeed()
    feed.process_new()  # paid, then disputed in full

    assert [creator_balance(c) for c in creators] == [0, 0, 0]
    assert balance(CONTENT) == 0
    assert Transaction.objects.filter(source=royalties.SPLIT_DISPUTE_SOURCE).count() == 1
    # A recurring licence's invoice is a sale of its item; the dispute a reversal of it.
    assert owner_earnings(creators[0]) == [(item.pk, 267, 0, -267, 0)]

    (dispute,) = stripe.Dispute.list(limit=10).data
    stripe.Dispute.modify(
        dispute.id,
        evidence={"uncategorized_text": "winning_evidence"},
        idempotency_key=key("evidence"),
    )
    feed.process_new()  # funds_reinstated, then closed (won): booked back once

    assert [creator_balance(c) for c in creators] == [-267, -266, -266]
    assert balance(CONTENT) == -200
    assert Transaction.objects.filter(source=royalties.SPLIT_DISPUTE_WON_SOURCE).count() == 1
    assert owner_earnings(creators[0]) == [(item.pk, 267, 0, 0, 267)]


def test_staff_adding_a_recurring_type_in_the_console_pushes_its_price(stripe_fake, admin_client):
    item, _ = three_creator_item()
    management = {
        f"{prefix}-{name}": value
        for prefix in ("license_types", "shares")
        for name, value in (
            ("TOTAL_FORMS", "1" if prefix == "license_types" else "0"),
            ("INITIAL_FORMS", "0"),
            ("MIN_NUM_FORMS", "0"),
            ("MAX_NUM_FORMS", "1000"),
        )
    }
    form = {
        "license_types-0-kind": "commercial",
        "license_types-0-pricing": "recurring",
        "license_types-0-is_active": "on",
        "license_types-0-amount": "500",
        "license_types-0-currency": "usd",
        "license_types-0-recurring_interval": "year",
        "license_types-0-overage": "block",
        "license_types-0-limits": "{}",
    }
    response = admin_client.post(
        f"/admin/content/contentitem/{item.pk}/change/",
        {
            "owner": item.owner_id,
            "title": item.title,
            "kind": item.kind,
            "description": "",
            **management,
            **form,
        },
    )
    assert response.status_code == 302, response.content[:3000]
    license_type = LicenseType.objects.get(item=item)
    assert license_type.stripe_price_id
    price = stripe.Price.retrieve(license_type.stripe_price_id)
    assert (price.unit_amount, price.recurring.interval) == (500, "year")
