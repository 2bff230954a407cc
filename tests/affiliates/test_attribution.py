"""referral_attribute: precedence, window, last click, one referral per customer; wiring."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import stripe
from django.conf import settings
from django.db import connection
from django.utils import timezone

from affiliates.models import Affiliate, Referral
from affiliates.services import tracking
from affiliates.services.attribution import referral_attribute
from tests.affiliates.factories import ReferralLinkFactory
from tests.subscriptions.api_helpers import alice, catalog, client_for  # noqa: F401
from tests.subscriptions.effects_helpers import EventFeed, key

pytestmark = pytest.mark.django_db


def cookie_for(link, *, at=None):
    at = at or timezone.now()
    return tracking.referral_cookie_value(click_uid=f"{link.code:0<32}", code=link.code, at=at)


def test_explicit_code_beats_cookie_beats_metadata():
    code_link, cookie_link, meta_link = ReferralLinkFactory.create_batch(3)
    now = timezone.now()
    referral = referral_attribute(
        stripe_customer_id="cus_1",
        referral_code=code_link.code,
        cookie_value=cookie_for(cookie_link),
        metadata_code=meta_link.code,
        at=now,
    )
    assert (referral.link, referral.source) == (code_link, Referral.Source.CODE)
    assert referral.affiliate == code_link.affiliate
    assert referral.click_uid == ""

    referral = referral_attribute(
        stripe_customer_id="cus_2",
        cookie_value=cookie_for(cookie_link),
        metadata_code=meta_link.code,
        at=now,
    )
    assert (referral.link, referral.source) == (cookie_link, Referral.Source.COOKIE)
    assert referral.click_uid == f"{cookie_link.code:0<32}"

    referral = referral_attribute(stripe_customer_id="cus_3", metadata_code=meta_link.code, at=now)
    assert (referral.link, referral.source) == (meta_link, Referral.Source.METADATA)


def test_explicit_code_keeps_the_click_of_a_matching_cookie():
    link = ReferralLinkFactory()
    referral = referral_attribute(
        stripe_customer_id="cus_1",
        referral_code=link.code,
        cookie_value=cookie_for(link),
        at=timezone.now(),
    )
    assert referral.source == Referral.Source.CODE
    assert referral.click_uid == f"{link.code:0<32}"


def test_invalid_explicit_code_falls_back_to_cookie():
    link = ReferralLinkFactory()
    referral = referral_attribute(
        stripe_customer_id="cus_1",
        referral_code="nope",
        cookie_value=cookie_for(link),
        at=timezone.now(),
    )
    assert referral.link == link


def test_cookie_outside_window_does_not_count():
    link = ReferralLinkFactory(affiliate__program__attribution_window_days=7)
    now = timezone.now()
    assert (
        referral_attribute(
            stripe_customer_id="cus_old",
            cookie_value=cookie_for(link, at=now - timedelta(days=7, seconds=1)),
            at=now,
        )
        is None
    )
    assert (
        referral_attribute(
            stripe_customer_id="cus_new",
            cookie_value=cookie_for(link, at=now - timedelta(days=6, hours=23)),
            at=now,
        ).link
        == link
    )


def test_tampered_cookie_does_not_count():
    link = ReferralLinkFactory()
    other = ReferralLinkFactory()
    forged = cookie_for(link).replace(f".{link.code}.", f".{other.code}.")
    assert (
        referral_attribute(stripe_customer_id="c", cookie_value=forged, at=timezone.now()) is None
    )


@pytest.mark.parametrize(
    "disable",
    [
        {"is_active": False},
        {"affiliate__status": Affiliate.Status.PENDING},
        {"affiliate__status": Affiliate.Status.SUSPENDED},
        {"affiliate__program__is_active": False},
    ],
)
def test_only_eligible_links(disable):
    link = ReferralLinkFactory(**disable)
    now = timezone.now()
    assert (
        referral_attribute(
            stripe_customer_id="c",
            referral_code=link.code,
            cookie_value=cookie_for(link),
            metadata_code=link.code,
            at=now,
        )
        is None
    )
    assert Referral.objects.count() == 0


def test_last_click_wins(client, settings):
    settings.REDIS_URL = ""
    first = ReferralLinkFactory(code="first")
    last = ReferralLinkFactory(code="last")
    client.get("/r/first")
    client.get("/r/last")
    cookie = client.cookies[settings.AFFILIATE_REFERRAL_COOKIE].value
    referral = referral_attribute(stripe_customer_id="cus", cookie_value=cookie, at=timezone.now())
    assert referral.link == last
    assert referral.affiliate != first.affiliate
    assert referral.click_uid == last.clicks.get().click_uid


def test_one_referral_per_customer():
    a, b = ReferralLinkFactory.create_batch(2)
    now = timezone.now()
    first = referral_attribute(stripe_customer_id="cus", referral_code=a.code, at=now)
    again = referral_attribute(stripe_customer_id="cus", referral_code=b.code, at=now)
    assert again.pk == first.pk
    assert again.link == a
    assert Referral.objects.count() == 1


def test_fraud_flags_are_stored(settings):
    """Self-referral is the fraud module's rule; attribution stores what it reports."""
    link = ReferralLinkFactory()
    referral = referral_attribute(
        stripe_customer_id="cus_self",
        user=link.affiliate.user,
        referral_code=link.code,
        at=timezone.now(),
    )
    referral.refresh_from_db()
    assert referral.flags, "the affiliate's own account should be flagged by the fraud rules"


@pytest.mark.django_db(transaction=True)
def test_concurrent_attribution_makes_one_referral():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL for real concurrency")
    links = ReferralLinkFactory.create_batch(6)
    barrier = threading.Barrier(len(links))
    results, errors = [], []

    def attribute(link):
        try:
            barrier.wait()
            results.append(
                referral_attribute(
                    stripe_customer_id="cus_race", referral_code=link.code, at=timezone.now()
                ).pk
            )
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attribute, args=(link,)) for link in links]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Referral.objects.filter(stripe_customer_id="cus_race").count() == 1
    assert set(results) == {Referral.objects.get().pk}


# --- wiring: subscribe API and Stripe metadata events -------------------------------------------


def test_subscribe_api_with_referral_code_creates_the_referral(catalog, alice):  # noqa: F811
    link = ReferralLinkFactory(code="friend")
    response = client_for(alice).post(
        "/api/v1/subscriptions/",
        {
            "price": catalog["basic"].stripe_price_id,
            "payment_method": "pm_card_visa",
            "referral_code": "friend",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    referral = Referral.objects.get()
    assert (referral.link, referral.user, referral.source) == (link, alice, Referral.Source.CODE)
    alice.billing_customer.refresh_from_db()
    assert referral.stripe_customer_id == alice.billing_customer.stripe_customer_id


def test_subscribe_api_with_cookie_creates_the_referral(catalog, alice):  # noqa: F811
    link = ReferralLinkFactory(code="cookied")
    client = client_for(alice)
    client.cookies[settings.AFFILIATE_REFERRAL_COOKIE] = cookie_for(link)
    response = client.post(
        "/api/v1/subscriptions/",
        {"price": catalog["basic"].stripe_price_id, "payment_method": "pm_card_visa"},
        format="json",
    )
    assert response.status_code == 201, response.content
    referral = Referral.objects.get()
    assert (referral.link, referral.source) == (link, Referral.Source.COOKIE)


def test_customer_created_event_attributes_from_metadata(stripe_fake):
    link = ReferralLinkFactory(code="meta")
    feed = EventFeed()
    feed.new_events()
    customer = stripe.Customer.create(
        email="m@example.com", metadata={"referral_code": "meta"}, idempotency_key=key("cus")
    )
    feed.process_new(types={"customer.created"})
    referral = Referral.objects.get()
    assert (referral.stripe_customer_id, referral.link) == (customer.id, link)
    assert referral.source == Referral.Source.METADATA
