"""Factories for the portal, API and application tests (affiliate rows built directly)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from affiliates.models import Affiliate, Click, Commission, Program, Referral, ReferralLink
from tests.accounts.factories import UserFactory


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Program

    name = factory.Sequence(lambda n: f"Program {n}")
    slug = factory.Sequence(lambda n: f"program-{n}")
    landing_url = "https://example.com/"
    allowed_hosts = ["example.com"]
    commission_rate = Decimal("20")
    currency = "usd"


class AffiliateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Affiliate

    user = factory.SubFactory(UserFactory)
    program = factory.SubFactory(ProgramFactory)
    status = Affiliate.Status.APPROVED


class ReferralLinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReferralLink

    affiliate = factory.SubFactory(AffiliateFactory)
    code = factory.LazyFunction(lambda: secrets.token_urlsafe(9))


class ClickFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Click

    link = factory.SubFactory(ReferralLinkFactory)
    clicked_at = factory.LazyFunction(timezone.now)
    ip_hash = "0" * 64
    click_uid = factory.LazyFunction(lambda: secrets.token_hex(16))


class ReferralFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Referral

    affiliate = factory.SubFactory(AffiliateFactory)
    stripe_customer_id = factory.Sequence(lambda n: f"cus_test{n}")
    source = Referral.Source.CODE
    referred_at = factory.LazyFunction(timezone.now)


class CommissionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Commission

    referral = factory.SubFactory(ReferralFactory)
    affiliate = factory.SelfAttribute("referral.affiliate")
    stripe_invoice_id = factory.Sequence(lambda n: f"in_test{n}")
    base_amount = 10000
    amount = 2000
    currency = "usd"
    status = Commission.Status.HELD
    paid_at_invoice = factory.LazyFunction(timezone.now)
    available_at = factory.LazyAttribute(lambda o: o.paid_at_invoice + timedelta(days=30))
