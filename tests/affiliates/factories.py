"""factory_boy factories for the affiliates app (approved affiliates by default)."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from affiliates.models import Affiliate, Click, Commission, Program, Referral, ReferralLink
from tests.accounts.factories import UserFactory


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Program

    name = factory.Sequence(lambda n: f"Program {n}")
    slug = factory.Sequence(lambda n: f"program-{n}")
    landing_url = "https://www.example.com/welcome"
    allowed_hosts = factory.LazyFunction(lambda: ["www.example.com", "example.com"])
    attribution_window_days = 30


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
    code = factory.Sequence(lambda n: f"code{n}")


class ClickFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Click

    link = factory.SubFactory(ReferralLinkFactory)
    clicked_at = factory.LazyFunction(timezone.now)
    ip_hash = "0" * 64
    click_uid = factory.Sequence(lambda n: f"uid{n:029d}")


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
