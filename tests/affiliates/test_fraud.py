"""Fraud rules: each fires on its pattern and stays quiet otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import stripe
from djstripe import models as djm

from affiliates.models import Referral
from affiliates.services import fraud
from affiliates.services.fraud import commission_flags, referral_flags
from tests.accounts.factories import UserFactory
from tests.affiliates.factories import AffiliateFactory, ClickFactory, ReferralLinkFactory
from tests.subscriptions.effects_helpers import make_customer

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _referral(affiliate, *, customer_id="cus_fraudtest", click=None, at=NOW) -> Referral:
    return Referral.objects.create(
        affiliate=affiliate,
        link=click.link if click else None,
        stripe_customer_id=customer_id,
        source=Referral.Source.COOKIE if click else Referral.Source.CODE,
        click_uid=click.click_uid if click else "",
        referred_at=at,
    )


def _mirror_customer(email: str, *, card: str = "pm_card_visa", subscriber=None) -> str:
    customer, pm = make_customer(card=card, email=email)
    row = djm.Customer.sync_from_stripe_data(stripe.Customer.retrieve(customer.id))
    djm.PaymentMethod.sync_from_stripe_data(stripe.PaymentMethod.retrieve(pm.id))
    if subscriber is not None:
        row.subscriber = subscriber
        row.save()
    return customer.id


def test_same_email_as_the_affiliate_fires(stripe_fake):
    affiliate = AffiliateFactory(user=UserFactory(email="Ann@acme-corp.test"))
    referral = _referral(
        affiliate,
        customer_id=_mirror_customer("ann@acme-corp.test", card="pm_card_chargeCustomerFail"),
    )
    assert fraud.self_referral_email(referral) == "self_referral_email"


def test_same_company_domain_fires_but_public_mail_domains_do_not(stripe_fake):
    affiliate = AffiliateFactory(user=UserFactory(email="ann@acme-corp.test"))
    colleague = _referral(affiliate, customer_id=_mirror_customer("bob@acme-corp.test"))
    assert fraud.self_referral_domain(colleague) == "self_referral_domain"
    assert fraud.self_referral_email(colleague) is None

    gmail = AffiliateFactory(user=UserFactory(email="ann@gmail.com"))
    stranger = _referral(gmail, customer_id=_mirror_customer("bob@gmail.com"))
    assert fraud.self_referral_domain(stranger) is None
    other = _referral(affiliate, customer_id=_mirror_customer("eve@elsewhere.test"))
    assert referral_flags(referral=other) == []


def test_the_affiliates_own_customer_and_card_fire(stripe_fake):
    user = UserFactory(email="ann@acme-corp.test")
    affiliate = AffiliateFactory(user=user)
    own = _mirror_customer("billing@ann-home.test", subscriber=user)
    assert (
        fraud.self_referral_payment(_referral(affiliate, customer_id=own))
        == "self_referral_customer"
    )

    same_card = _mirror_customer("zed@other.test", card="pm_card_visa")
    referral = _referral(affiliate, customer_id=same_card)
    assert fraud.self_referral_payment(referral) == "self_referral_card"

    Referral.objects.all().delete()
    other_card = _mirror_customer("kim@other.test", card="pm_card_chargeCustomerFail")
    assert fraud.self_referral_payment(_referral(affiliate, customer_id=other_card)) is None


def _clicks(link, n, *, ip="a" * 64, start=NOW - timedelta(hours=2)):
    return [
        ClickFactory(link=link, ip_hash=ip, clicked_at=start + timedelta(seconds=i))
        for i in range(n)
    ]


def test_many_clicks_from_one_ip_within_24h(settings):
    settings.AFFILIATE_FRAUD_MAX_CLICKS_PER_IP = 5
    link = ReferralLinkFactory()
    clicks = _clicks(link, 6)
    _clicks(link, 10, start=NOW - timedelta(hours=30))  # outside the window
    referral = _referral(link.affiliate, click=clicks[-1])
    assert fraud.many_clicks_from_one_ip(referral) == "many_clicks_from_one_ip"


def test_a_few_clicks_from_one_ip_do_not_fire(settings):
    settings.AFFILIATE_FRAUD_MAX_CLICKS_PER_IP = 5
    link = ReferralLinkFactory()
    clicks = _clicks(link, 5)
    _clicks(link, 10, ip="b" * 64)  # other IPs
    _clicks(ReferralLinkFactory(), 10)  # another affiliate's links
    referral = _referral(link.affiliate, click=clicks[-1])
    assert fraud.many_clicks_from_one_ip(referral) is None


def test_conversion_seconds_after_the_click(settings):
    settings.AFFILIATE_FRAUD_MIN_SECONDS_TO_CONVERT = 10
    fast = ClickFactory(clicked_at=NOW - timedelta(seconds=3))
    slow = ClickFactory(clicked_at=NOW - timedelta(minutes=5))
    assert (
        fraud.fast_conversion(_referral(fast.link.affiliate, click=fast, customer_id="cus_a"))
        == "fast_conversion"
    )
    assert (
        fraud.fast_conversion(_referral(slow.link.affiliate, click=slow, customer_id="cus_b"))
        is None
    )
    assert fraud.fast_conversion(_referral(slow.link.affiliate, customer_id="cus_c")) is None


def test_commission_flags_add_the_referrals_stored_reasons(settings):
    settings.AFFILIATE_FRAUD_MIN_SECONDS_TO_CONVERT = 10
    click = ClickFactory(clicked_at=NOW - timedelta(seconds=1))
    referral = _referral(click.link.affiliate, click=click)
    referral.flags = ["manual_suspicion"]
    referral.save()

    class _Commission:
        pass

    commission = _Commission()
    commission.referral = referral  # type: ignore[attr-defined]
    assert commission_flags(commission=commission) == ["fast_conversion", "manual_suspicion"]  # type: ignore[arg-type]
