"""Factories for the tracking/attribution/admin tests (programs, approved affiliates, links)."""

from __future__ import annotations

import factory

from affiliates.models import Affiliate, Click, Program, ReferralLink
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
    clicked_at = factory.Faker("date_time_this_month", tzinfo=__import__("datetime").UTC)
    ip_hash = "0" * 64
    click_uid = factory.Sequence(lambda n: f"uid{n:029d}")
