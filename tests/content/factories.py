"""factory_boy factories for the content app (active creators, published items)."""

from __future__ import annotations

import factory
from django.utils import timezone

from content.models import ContentItem, Creator, License, LicenseType
from content.services import license_key_generate
from tests.accounts.factories import UserFactory


class CreatorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Creator

    # No usable password: hashing one is slow, and creators authenticate by token in tests.
    user = factory.SubFactory(UserFactory, password=None)
    display_name = factory.Sequence(lambda n: f"Creator {n}")


class ContentItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContentItem

    owner = factory.SubFactory(CreatorFactory)
    title = factory.Sequence(lambda n: f"Item {n}")
    kind = ContentItem.Kind.ARTICLE
    status = ContentItem.Status.PUBLISHED
    published_at = factory.LazyFunction(timezone.now)


class LicenseTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LicenseType

    item = factory.SubFactory(ContentItemFactory)
    kind = LicenseType.Kind.PERSONAL
    pricing = LicenseType.Pricing.ONE_TIME
    amount = 1999
    currency = "usd"


class LicenseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = License

    license_type = factory.SubFactory(LicenseTypeFactory)
    content = factory.SelfAttribute("license_type.item")
    holder = factory.SubFactory(UserFactory, password=None)
    key_prefix = factory.LazyAttribute(lambda o: o.new_key.prefix)
    key_hash = factory.LazyAttribute(lambda o: o.new_key.key_hash)
    status = License.Status.ACTIVE
    exclusive = factory.LazyAttribute(lambda o: o.license_type.kind == LicenseType.Kind.EXCLUSIVE)
    issued_at = factory.LazyFunction(timezone.now)
    amount = factory.SelfAttribute("license_type.amount")
    currency = factory.SelfAttribute("license_type.currency")

    class Params:
        new_key = factory.LazyFunction(license_key_generate)
