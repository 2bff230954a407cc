"""factory_boy factories for the services marketplace: categories, providers (paid by bank
transfer, so onboarding is complete, unless ``onboarded=False``), listings and packages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import factory
from django.utils import timezone

from ledger.models import Account, PayeeProfile
from marketplace.models import Category, Listing, ListingPackage, Provider
from tests.accounts.factories import UserFactory


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")
    commission_percent = Decimal("15.00")


class ProviderFactory(factory.django.DjangoModelFactory):
    """An active provider; ``onboarded=True`` (the default) gives them bank details, so they
    may submit and publish listings."""

    class Meta:
        model = Provider
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory, password=None)
    display_name = factory.Sequence(lambda n: f"Provider {n}")

    @factory.post_generation
    def onboarded(self, create: bool, extracted: bool | None, **kwargs: Any) -> None:
        if create and extracted is not False:
            PayeeProfile.objects.update_or_create(
                payee_type=Account.PayeeType.PROVIDER,
                payee_id=self.pk,
                defaults={
                    "method": PayeeProfile.Method.BANK_CSV,
                    "bank_account_name": self.display_name,
                    "bank_iban": "DE89370400440532013000",
                    "bank_bic": "COBADEFFXXX",
                },
            )


class ListingFactory(factory.django.DjangoModelFactory):
    """A published listing (``status=...`` for another) with one basic package unless
    ``packages=0`` (``ListingPackageFactory`` adds more)."""

    class Meta:
        model = Listing
        skip_postgeneration_save = True

    provider = factory.SubFactory(ProviderFactory)
    category = factory.SubFactory(CategoryFactory)
    title = factory.Sequence(lambda n: f"Service {n}")
    description = "What you get."
    status = Listing.Status.PUBLISHED
    published_at = factory.LazyAttribute(
        lambda o: timezone.now() if o.status == Listing.Status.PUBLISHED else None
    )
    submitted_at = factory.LazyAttribute(
        lambda o: timezone.now() if o.status != Listing.Status.DRAFT else None
    )

    @factory.post_generation
    def packages(self, create: bool, extracted: int | None, **kwargs: Any) -> None:
        if create and extracted != 0:
            ListingPackageFactory(listing=self, **kwargs)


class ListingPackageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ListingPackage

    listing = factory.SubFactory(ListingFactory, packages=0)
    tier = ListingPackage.Tier.BASIC
    name = factory.LazyAttribute(lambda o: o.tier.capitalize())
    price = 5000
    currency = "usd"
    delivery_days = 3
    revisions = 1
