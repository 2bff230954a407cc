from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from content import selectors, services
from content.models import ContentItem, ContentShare, Creator, License, LicenseType, LicenseUsage
from ledger.models import PayeeProfile
from ledger.payouts import _hooks
from tests.accounts.factories import UserFactory
from tests.content.factories import (
    ContentItemFactory,
    CreatorFactory,
    LicenseFactory,
    LicenseTypeFactory,
)

pytestmark = pytest.mark.django_db


# --- creators ------------------------------------------------------------------------------


def test_a_creator_gets_the_default_fee_and_a_payee_profile(settings):
    settings.CONTENT_PLATFORM_FEE_PERCENT = Decimal("15.50")
    creator = services.creator_create(user=UserFactory(), display_name="  Ada  ")
    creator.refresh_from_db()
    assert creator.display_name == "Ada"
    assert creator.platform_fee_percent == Decimal("15.50")
    assert creator.status == Creator.Status.ACTIVE
    profile = PayeeProfile.objects.get(payee_type="creator", payee_id=creator.pk)
    assert profile.method == ""


def test_a_user_is_a_creator_once_and_names_are_required():
    user = UserFactory()
    services.creator_create(user=user, display_name="Ada")
    with pytest.raises(ValidationError) as exc:
        services.creator_create(user=user, display_name="Again")
    assert "user" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.creator_create(user=UserFactory(), display_name="   ")
    assert "display_name" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.creator_create(
            user=UserFactory(), display_name="B", platform_fee_percent=Decimal("100.01")
        )
    assert "platform_fee_percent" in exc.value.message_dict
    assert Creator.objects.count() == 1


def test_the_payout_engine_knows_creators_and_their_minimum(settings):
    settings.CONTENT_PAYOUT_MINIMUM = 2500
    hooks = _hooks("creator")
    assert hooks.minimum is not None
    assert hooks.minimum(CreatorFactory().pk) == 2500


def test_the_database_refuses_a_fee_out_of_range():
    creator = CreatorFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Creator.objects.filter(pk=creator.pk).update(platform_fee_percent=Decimal(101))


# --- items and moderation ----------------------------------------------------------------


def test_publishing_sets_published_at_once_and_a_suspended_creator_cannot_publish():
    creator = CreatorFactory()
    item = services.content_item_create(owner=creator, title="Essay", kind="article")
    assert item.status == ContentItem.Status.DRAFT
    assert item.published_at is None
    item = services.content_item_update(item=item, status="published")
    first = item.published_at
    assert first is not None
    item = services.content_item_update(item=item, status="draft")
    item = services.content_item_update(item=item, status="published")
    assert item.published_at == first

    services.creator_update(creator=creator, status=Creator.Status.SUSPENDED)
    item = services.content_item_update(item=item, status="draft")
    with pytest.raises(ValidationError) as exc:
        services.content_item_update(item=item, status="published")
    assert "status" in exc.value.message_dict


def test_invalid_item_fields_are_named():
    creator = CreatorFactory()
    with pytest.raises(ValidationError) as exc:
        services.content_item_create(owner=creator, title="", kind="podcast")
    assert set(exc.value.message_dict) == {"title", "kind"}


def test_staff_moderation_needs_a_reason_and_only_staff_republish():
    item = ContentItemFactory()
    with pytest.raises(ValidationError) as exc:
        services.content_item_moderate(item=item, action="unpublish", reason=" ")
    assert "reason" in exc.value.message_dict

    item = services.content_item_moderate(item=item, action="archive", reason="Copyright claim")
    assert item.status == ContentItem.Status.ARCHIVED
    assert item.moderation_note == "Copyright claim"
    with pytest.raises(ValidationError):
        services.content_item_update(item=item, status="published")

    item = services.content_item_moderate(item=item, action="republish")
    assert item.status == ContentItem.Status.PUBLISHED
    assert item.moderation_note == ""
    with pytest.raises(ValueError, match="unknown"):
        services.content_item_moderate(item=item, action="delete", reason="x")


def test_a_published_item_needs_a_date_in_the_database():
    item = ContentItemFactory(status=ContentItem.Status.DRAFT, published_at=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        ContentItem.objects.filter(pk=item.pk).update(status="published")


def test_the_item_fee_overrides_the_creator_fee():
    item = ContentItemFactory(owner__platform_fee_percent=Decimal("20.00"))
    assert item.effective_platform_fee_percent == Decimal("20.00")
    item.platform_fee_percent = Decimal("5.00")
    assert item.effective_platform_fee_percent == Decimal("5.00")


# --- shares --------------------------------------------------------------------------------


def test_an_item_without_shares_is_all_the_owners():
    item = ContentItemFactory()
    assert selectors.content_shares(item=item) == [(item.owner, Decimal(100))]


def test_three_co_creators_at_33_33_33_33_33_34():
    item = ContentItemFactory()
    b, c = CreatorFactory(), CreatorFactory()
    services.content_shares_set(
        item=item,
        shares=[
            (item.owner, Decimal("33.33")),
            (b, Decimal("33.33")),
            (c, Decimal("33.34")),
        ],
    )
    shares = selectors.content_shares(item=item)
    assert [(creator.pk, percent) for creator, percent in shares] == [
        (item.owner.pk, Decimal("33.33")),
        (b.pk, Decimal("33.33")),
        (c.pk, Decimal("33.34")),
    ]


@pytest.mark.parametrize(
    "percents",
    [
        ["33.33", "33.33", "33.33"],  # 99.99
        ["50", "50.0001"],  # 100.0001
        ["100", "0"],  # a zero share
        ["110", "-10"],  # a negative share
        ["33.33333", "66.66667"],  # more than 4 decimal places
    ],
)
def test_shares_that_are_not_exactly_100_are_refused_and_nothing_changes(percents):
    item = ContentItemFactory()
    others = [CreatorFactory() for _ in percents[1:]]
    services.content_shares_set(
        item=item, shares=[(item.owner, Decimal(60)), (others[0], Decimal(40))]
    )
    shares = [(item.owner, Decimal(percents[0]))] + [
        (creator, Decimal(p)) for creator, p in zip(others, percents[1:], strict=True)
    ]
    with pytest.raises(ValidationError) as exc:
        services.content_shares_set(item=item, shares=shares)
    assert "shares" in exc.value.message_dict
    assert sorted(ContentShare.objects.filter(item=item).values_list("percent", flat=True)) == [
        Decimal(40),
        Decimal(60),
    ]


def test_shares_must_include_the_owner_and_name_each_creator_once():
    item = ContentItemFactory()
    other = CreatorFactory()
    with pytest.raises(ValidationError, match="owner"):
        services.content_shares_set(item=item, shares=[(other, Decimal(100))])
    with pytest.raises(ValidationError, match="twice"):
        services.content_shares_set(
            item=item, shares=[(item.owner, Decimal(50)), (item.owner, Decimal(50))]
        )
    assert not ContentShare.objects.filter(item=item).exists()


@pytest.fixture
def item_and_creators():
    item = ContentItemFactory()
    return item, [item.owner, CreatorFactory(), CreatorFactory(), CreatorFactory()]


def _stored(item):
    return sorted(ContentShare.objects.filter(item=item).values_list("creator_id", "percent"))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    percents=st.lists(
        st.decimals(min_value=Decimal("-5"), max_value=Decimal("105"), places=4),
        min_size=1,
        max_size=4,
    ),
    complete=st.booleans(),
    owner_first=st.booleans(),
)
def test_any_accepted_set_of_shares_totals_exactly_100(
    item_and_creators, percents, complete, owner_first
):
    item, creators = item_and_creators
    if complete:  # make the last share complete the 100, so accepted sets are common
        percents = [*percents[:-1], Decimal(100) - sum(percents[:-1])]
    chosen = creators[: len(percents)] if owner_first else creators[1 : len(percents) + 1]
    before = _stored(item)
    try:
        services.content_shares_set(item=item, shares=list(zip(chosen, percents, strict=False)))
    except ValidationError as exc:
        assert "shares" in exc.message_dict
        assert _stored(item) == before  # refused: nothing changed
        return
    stored = _stored(item)
    assert sum(percent for _, percent in stored) == Decimal(100)
    assert all(percent > 0 for _, percent in stored)
    assert item.owner.pk in {creator_id for creator_id, _ in stored}
    assert len(stored) == len(percents)


# --- licence types -------------------------------------------------------------------------


def _create(**values):
    item = values.pop("item", None) or ContentItemFactory()
    return services.license_type_create(item=item, **values)


def test_licence_types_of_every_kind_and_pricing():
    one_time = _create(kind="personal", pricing="one_time", amount=999, currency="USD")
    assert one_time.currency == "usd"
    assert one_time.is_perpetual
    assert one_time.overage_factor == Decimal(1)
    recurring = _create(
        kind="commercial", pricing="recurring", amount=4900, currency="eur", limits={"seats": 5}
    )
    assert recurring.limits == {"seats": 5}
    royalty = _create(
        kind="usage_royalty",
        pricing="per_use",
        currency="jpy",
        per_use_unit_amount=Decimal("0.25"),
        limits={"api_calls": 1000},
        overage="allow_150",
    )
    assert royalty.overage_factor == Decimal("1.5")
    exclusive = _create(kind="exclusive", amount=100_000, currency="usd", term_days=365)
    assert not exclusive.is_perpetual


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"kind": "personal", "amount": 0, "currency": "usd"}, "amount"),
        ({"kind": "personal", "amount": -5, "currency": "usd"}, "amount"),
        ({"kind": "personal", "amount": 100, "currency": "dollars"}, "currency"),
        ({"kind": "personal", "amount": 100, "currency": "usd", "limits": {"pages": 3}}, "limits"),
        ({"kind": "personal", "amount": 100, "currency": "usd", "limits": {"views": -1}}, "limits"),
        ({"kind": "personal", "amount": 100, "currency": "usd", "limits": [1]}, "limits"),
        ({"kind": "personal", "amount": 100, "currency": "usd", "term_days": 0}, "term_days"),
        ({"kind": "personal", "pricing": "per_use", "currency": "usd"}, "per_use_unit_amount"),
        ({"kind": "usage_royalty", "amount": 100, "currency": "usd"}, "pricing"),
        (
            {
                "kind": "exclusive",
                "pricing": "per_use",
                "currency": "usd",
                "per_use_unit_amount": Decimal(1),
            },
            "pricing",
        ),
        (
            {
                "kind": "personal",
                "amount": 100,
                "currency": "usd",
                "overage": "allow_200",
                "limits": {"downloads": 3},
            },
            "per_use_unit_amount",
        ),
        (
            {
                "kind": "personal",
                "amount": 100,
                "currency": "usd",
                "overage": "allow_200",
                "per_use_unit_amount": Decimal(5),
            },
            "overage",
        ),
        (
            {"kind": "personal", "amount": 100, "currency": "usd", "stripe_price_id": "price_1"},
            "stripe_price_id",
        ),
        (
            {
                "kind": "commercial",
                "pricing": "recurring",
                "amount": 100,
                "currency": "usd",
                "term_days": 30,
            },
            "term_days",
        ),
    ],
)
def test_invalid_licence_types_are_refused_naming_the_field(values, field):
    with pytest.raises(ValidationError) as exc:
        _create(**values)
    assert field in exc.value.message_dict
    assert not LicenseType.objects.exists()


def test_updating_a_licence_type_is_validated_too():
    license_type = LicenseTypeFactory()
    with pytest.raises(ValidationError) as exc:
        services.license_type_update(license_type=license_type, amount=0)
    assert "amount" in exc.value.message_dict
    license_type = services.license_type_update(license_type=license_type, is_active=False)
    assert not license_type.is_active


def test_the_database_refuses_a_negative_price():
    license_type = LicenseTypeFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        LicenseType.objects.filter(pk=license_type.pk).update(amount=-1)


# --- licences ------------------------------------------------------------------------------


def test_the_key_is_never_stored_only_its_keyed_hash():
    new = services.license_key_generate()
    assert new.key.startswith(new.prefix + "_")
    assert new.key_hash == services.license_key_hash(new.key)
    assert new.key_hash != services.license_key_hash(new.key + "x")
    assert new.key not in new.key_hash


def test_one_active_exclusive_licence_per_item():
    license_type = LicenseTypeFactory(kind=LicenseType.Kind.EXCLUSIVE)
    first = LicenseFactory(license_type=license_type)
    assert first.exclusive
    with pytest.raises(IntegrityError), transaction.atomic():
        LicenseFactory(license_type=license_type)
    # Pending or revoked ones do not hold the item.
    LicenseFactory(license_type=license_type, status=License.Status.PENDING)
    License.objects.filter(pk=first.pk).update(status=License.Status.REVOKED)
    LicenseFactory(license_type=license_type)
    # Non-exclusive licences are unlimited.
    personal = LicenseTypeFactory(item=license_type.item)
    LicenseFactory(license_type=personal)
    LicenseFactory(license_type=personal)


def test_a_payment_intent_issues_one_licence_but_blank_is_allowed_many_times():
    LicenseFactory(stripe_payment_intent_id="")
    LicenseFactory(stripe_payment_intent_id="")
    LicenseFactory(stripe_payment_intent_id="pi_1")
    with pytest.raises(IntegrityError), transaction.atomic():
        LicenseFactory(stripe_payment_intent_id="pi_1")


def test_usage_counts_per_event_exclude_denied_attempts():
    license = LicenseFactory()
    assert selectors.license_usage_counts(license=license) == {
        "view": 0,
        "download": 0,
        "api_call": 0,
    }
    now = license.issued_at
    LicenseUsage.objects.create(license=license, event="view", quantity=3, event_id="a", at=now)
    LicenseUsage.objects.create(license=license, event="view", quantity=2, event_id="b", at=now)
    LicenseUsage.objects.create(license=license, event="download", event_id="c", at=now)
    LicenseUsage.objects.create(
        license=license, event="download", event_id="d", denied=True, at=now
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        LicenseUsage.objects.create(license=license, event="view", event_id="a", at=now)
    assert selectors.license_usage_counts(license=license) == {
        "view": 5,
        "download": 1,
        "api_call": 0,
    }
