"""Content writes: creators (and their payee profile), items (publishing, moderation),
co-creator shares and licence types. Licences are issued by the purchase flow (later); the key
helpers live here so it and verification share one definition.

Every service is keyword-only and runs in one transaction; invalid input raises Django's
``ValidationError`` naming the field, which the API answers with 400.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.models import User
from content.models import ContentItem, ContentShare, Creator, LicenseType
from ledger.models import Account, PayeeProfile
from revenue_site.money import MoneyError, normalize_currency
from revenue_site.stripe_errors import BillingError, stripe_errors
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)

PAYEE_TYPE = Account.PayeeType.CREATOR
HUNDRED = Decimal(100)
SHARE_QUANTUM = Decimal("0.0001")
LICENSE_KEY_PREFIX = "lk_"
_KEY_PREFIX_CHARS = 16  # 64 random bits: the prefix is unique, so it must not collide
_KEY_SECRET_BYTES = 24
# ``License.key_prefix``: ``lk_`` and 16 hex characters.
LICENSE_KEY_PREFIX_LENGTH = len(LICENSE_KEY_PREFIX) + _KEY_PREFIX_CHARS


# --- creators ----------------------------------------------------------------------------


def _display_name(value: str) -> str:
    name = value.strip()
    if not name:
        raise ValidationError({"display_name": ["Enter a display name."]})
    if len(name) > 100:
        raise ValidationError({"display_name": ["At most 100 characters."]})
    return name


@transaction.atomic
def creator_create(
    *, user: User, display_name: str, platform_fee_percent: Decimal | None = None
) -> Creator:
    """Make ``user`` a creator, with a payee profile in the payout engine (no payout method
    yet: the engine keeps their balance until one is set). Raises ValidationError naming the
    field: ``display_name``, ``platform_fee_percent``, or ``user`` when they already are one."""
    name = _display_name(display_name)
    fields: dict[str, Any] = {"user": user, "display_name": name}
    if platform_fee_percent is not None:
        fields["platform_fee_percent"] = _fee(platform_fee_percent, "platform_fee_percent")
    try:
        with transaction.atomic():
            creator = Creator.objects.create(**fields)
    except IntegrityError as exc:
        raise ValidationError({"user": ["This account is already a creator."]}) from exc
    creator_payee_profile_ensure(creator=creator)
    return creator


def creator_payee_profile_ensure(*, creator: Creator) -> PayeeProfile:
    """The creator's PayeeProfile (payee type ``creator``), created without a method if new.
    Also used by the admin, where staff create creators."""
    profile, _ = PayeeProfile.objects.get_or_create(payee_type=PAYEE_TYPE, payee_id=creator.pk)
    return profile


@transaction.atomic
def creator_update(
    *,
    creator: Creator,
    display_name: str | None = None,
    platform_fee_percent: Decimal | None = None,
    status: str | None = None,
) -> Creator:
    """Change a creator's name, fee (staff) or status (staff: active / suspended)."""
    if display_name is not None:
        creator.display_name = _display_name(display_name)
    if platform_fee_percent is not None:
        creator.platform_fee_percent = _fee(platform_fee_percent, "platform_fee_percent")
    if status is not None:
        if status not in Creator.Status.values:
            raise ValidationError({"status": [f"One of {', '.join(Creator.Status.values)}."]})
        creator.status = status
    creator.save()
    return creator


def _fee(value: Decimal, field: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= HUNDRED:
        raise ValidationError({field: ["A percentage between 0 and 100."]})
    if value != value.quantize(Decimal("0.01")):
        raise ValidationError({field: ["At most 2 decimal places."]})
    return value


# --- content items -----------------------------------------------------------------------

_ITEM_FIELDS = ("title", "kind", "description")


def _item_values(values: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    if "title" in values:
        title = str(values["title"]).strip()
        if not title:
            errors["title"] = ["Enter a title."]
        elif len(title) > 200:
            errors["title"] = ["At most 200 characters."]
        clean["title"] = title
    if "kind" in values:
        if values["kind"] not in ContentItem.Kind.values:
            errors["kind"] = [f"One of {', '.join(ContentItem.Kind.values)}."]
        clean["kind"] = values["kind"]
    if "description" in values:
        clean["description"] = str(values["description"])
    if errors:
        raise ValidationError(errors)
    return clean


@transaction.atomic
def content_item_create(
    *, owner: Creator, title: str, kind: str, description: str = ""
) -> ContentItem:
    """A new DRAFT item owned by ``owner`` (100 % theirs until shares are set)."""
    values = _item_values({"title": title, "kind": kind, "description": description})
    return ContentItem.objects.create(owner=owner, **values)


@transaction.atomic
def content_item_update(*, item: ContentItem, **values: Any) -> ContentItem:
    """The owner edits ``title``, ``kind``, ``description`` and moves the status:
    publish (needs an active creator), unpublish to draft, or archive. Raises
    ValidationError naming the field."""
    unknown = set(values) - {*_ITEM_FIELDS, "status"}
    if unknown:
        raise TypeError(f"unexpected fields: {', '.join(sorted(unknown))}")
    item = ContentItem.objects.select_for_update().select_related("owner").get(pk=item.pk)
    for name, value in _item_values(values).items():
        setattr(item, name, value)
    status = values.get("status")
    if status is not None and status != item.status:
        if status not in ContentItem.Status.values:
            raise ValidationError({"status": [f"One of {', '.join(ContentItem.Status.values)}."]})
        if status == ContentItem.Status.PUBLISHED:
            _check_can_publish(item)
            item.published_at = item.published_at or timezone.now()
        item.status = status
    item.save()
    return item


def _check_can_publish(item: ContentItem) -> None:
    if not item.owner.is_active:
        raise ValidationError({"status": ["A suspended creator cannot publish."]})
    if item.moderation_note:
        # Staff took it down: only staff put it back (content_item_moderate "republish").
        raise ValidationError(
            {"status": [f"Taken down by staff ({item.moderation_note}); ask them to republish."]}
        )


@transaction.atomic
def content_item_moderate(*, item: ContentItem, action: str, reason: str = "") -> ContentItem:
    """Staff moderation: ``unpublish`` (back to draft) or ``archive`` with a reason (kept in
    ``moderation_note``, shown to the creator), or ``republish`` (clears the note). Raises
    ValidationError naming ``reason`` when unpublishing/archiving without one, ``status`` when
    the owner is suspended on republish, and ValueError for an unknown action."""
    item = ContentItem.objects.select_for_update().select_related("owner").get(pk=item.pk)
    if action in ("unpublish", "archive"):
        reason = reason.strip()
        if not reason:
            raise ValidationError({"reason": ["Say why (the creator sees it)."]})
        item.status = (
            ContentItem.Status.DRAFT if action == "unpublish" else ContentItem.Status.ARCHIVED
        )
        item.moderation_note = reason
    elif action == "republish":
        if not item.owner.is_active:
            raise ValidationError({"status": ["A suspended creator cannot publish."]})
        item.status = ContentItem.Status.PUBLISHED
        item.published_at = item.published_at or timezone.now()
        item.moderation_note = ""
    else:
        raise ValueError(f"unknown moderation action {action!r}")
    item.save()
    return item


# --- shares ------------------------------------------------------------------------------


@transaction.atomic
def content_shares_set(
    *, item: ContentItem, shares: Iterable[tuple[Creator, Decimal]]
) -> list[ContentShare]:
    """Replace the item's revenue shares at once. They must name each creator once, each
    above 0 with at most 4 decimal places, include the owner and total exactly 100.
    Raises ValidationError naming ``shares``; nothing changes then."""
    item = ContentItem.objects.select_for_update().get(pk=item.pk)
    pairs = list(shares)
    errors: list[str] = []
    seen: set[int] = set()
    total = Decimal(0)
    for creator, percent in pairs:
        if not isinstance(percent, Decimal) or not percent.is_finite():
            errors.append(f"{creator}: a decimal percentage.")
            continue
        if percent <= 0 or percent > HUNDRED:
            errors.append(f"{creator}: above 0 and at most 100.")
        if percent != percent.quantize(SHARE_QUANTUM):
            errors.append(f"{creator}: at most 4 decimal places.")
        if creator.pk in seen:
            errors.append(f"{creator} is named twice.")
        seen.add(creator.pk)
        total += percent
    if not errors:
        if item.owner_id not in seen:
            errors.append("The owner must have a share.")
        if total != HUNDRED:
            errors.append(f"The shares total {total}%, not exactly 100%.")
    if errors:
        raise ValidationError({"shares": errors})
    ContentShare.objects.filter(item=item).delete()
    return ContentShare.objects.bulk_create(
        ContentShare(item=item, creator=creator, percent=percent) for creator, percent in pairs
    )


# --- licence types -----------------------------------------------------------------------

LICENSE_TYPE_FIELDS = (
    "kind",
    "pricing",
    "amount",
    "currency",
    "stripe_price_id",
    "recurring_interval",
    "per_use_unit_amount",
    "term_days",
    "limits",
    "overage",
    "is_active",
)


def _license_type_save(license_type: LicenseType) -> LicenseType:
    if isinstance(license_type.currency, str) and license_type.currency:
        try:
            license_type.currency = normalize_currency(license_type.currency)
        except MoneyError as exc:
            raise ValidationError({"currency": [str(exc)]}) from exc
    license_type.full_clean(exclude=["item"])
    license_type.save()
    return license_type


@transaction.atomic
def license_type_create(*, item: ContentItem, **values: Any) -> LicenseType:
    """A licence type for ``item``; ``values`` are LicenseType fields (LICENSE_TYPE_FIELDS).
    Raises ValidationError naming the field for an invalid price, currency, term, limits or
    combination (see ``LicenseType.clean``). A recurring type without a Stripe Price gets one
    (``license_type_price_push``; if Stripe is unreachable, at its first sale instead)."""
    unknown = set(values) - set(LICENSE_TYPE_FIELDS)
    if unknown:
        raise TypeError(f"unexpected fields: {', '.join(sorted(unknown))}")
    license_type = _license_type_save(LicenseType(item=item, **values))
    _price_push_if_absent(license_type)
    return license_type


# What a recurring type's Stripe Price is made of: a change needs a new Price (they are
# immutable at Stripe).
_PRICE_FIELDS = ("pricing", "amount", "currency", "recurring_interval")


@transaction.atomic
def license_type_update(*, license_type: LicenseType, **values: Any) -> LicenseType:
    """Change a licence type's fields (licences already issued keep what they were sold). A
    recurring type whose amount, currency or interval changes gets a new Stripe Price; one
    that stops being recurring drops its Price."""
    unknown = set(values) - set(LICENSE_TYPE_FIELDS)
    if unknown:
        raise TypeError(f"unexpected fields: {', '.join(sorted(unknown))}")
    license_type = LicenseType.objects.select_for_update().get(pk=license_type.pk)
    before = tuple(getattr(license_type, name) for name in _PRICE_FIELDS)
    for name, value in values.items():
        setattr(license_type, name, value)
    changed = before != tuple(getattr(license_type, name) for name in _PRICE_FIELDS)
    if "stripe_price_id" not in values and (
        changed or license_type.pricing != LicenseType.Pricing.RECURRING
    ):
        license_type.stripe_price_id = ""
    license_type = _license_type_save(license_type)
    _price_push_if_absent(license_type)
    return license_type


def license_type_price_after_admin_save(
    *, license_type: LicenseType, changed: Iterable[str]
) -> LicenseType:
    """The staff console saves licence types through its inline form, not through
    ``license_type_update``: afterwards, a type whose amount, currency, interval or pricing
    changed drops its old Price (unless staff set one), and a recurring type without a Price
    gets one (or at its first sale, if Stripe is down now)."""
    changed = set(changed)
    if changed & set(_PRICE_FIELDS) and "stripe_price_id" not in changed:
        LicenseType.objects.filter(pk=license_type.pk).update(stripe_price_id="")
        license_type.stripe_price_id = ""
    _price_push_if_absent(license_type)
    return license_type


def _price_push_if_absent(license_type: LicenseType) -> None:
    if license_type.pricing != LicenseType.Pricing.RECURRING or license_type.stripe_price_id:
        return
    try:
        license_type.stripe_price_id = license_type_price_push(
            license_type=license_type
        ).stripe_price_id
    except BillingError as exc:
        # Saved without a Price: the first sale pushes it (and answers 503 if Stripe is
        # still down). Creating a licence type does not depend on Stripe being up.
        logger.warning("licence type %s: Stripe Price not created yet: %s", license_type.pk, exc)


def _price_key(license_type: LicenseType) -> str:
    return (
        f"content-license-type-price-{license_type.pk}-{license_type.amount}-"
        f"{license_type.currency}-{license_type.recurring_interval}"
    )


@transaction.atomic
def license_type_price_push(*, license_type: LicenseType) -> LicenseType:
    """A recurring licence type's Stripe Price (``recurring.interval`` month or year, its
    amount and currency, a product named after the item), created once: the row is locked
    and the create's idempotency key is the type's pk and price, so a retry or a concurrent
    push gets the same Price. Returns the type with ``stripe_price_id``; one that has a Price,
    or is not recurring, is returned as it is. Raises the ``stripe_errors`` kinds."""
    license_type = (
        LicenseType.objects.select_for_update().select_related("item").get(pk=license_type.pk)
    )
    if license_type.pricing != LicenseType.Pricing.RECURRING or license_type.stripe_price_id:
        return license_type
    with stripe_errors():
        price = stripe.Price.create(
            currency=license_type.currency,
            unit_amount=license_type.amount,
            recurring={"interval": license_type.recurring_interval},
            product_data={
                "name": f"{license_type.item.title} ({license_type.get_kind_display()} licence)"[
                    :250
                ],
                "metadata": {"stream": "content", "content_item": str(license_type.item_id)},
            },
            metadata={"stream": "content", "content_license_type": str(license_type.pk)},
            api_key=stripe_api_key(),
            idempotency_key=_price_key(license_type),
        )
    license_type.stripe_price_id = price.id
    license_type.save(update_fields=["stripe_price_id"])
    return license_type


# --- licence keys (used by the purchase flow and verification) ---------------------------


def license_key_hash(key: str) -> str:
    """HMAC-SHA256 of a full licence key, keyed by a key derived from SECRET_KEY (a leaked
    table alone does not let anyone check guesses). Rotating SECRET_KEY invalidates every key."""
    return salted_hmac("content.License", key, algorithm="sha256").hexdigest()


@dataclass(frozen=True)
class NewLicenseKey:
    prefix: str
    key: str
    key_hash: str


def license_key_generate() -> NewLicenseKey:
    """A new key: ``lk_`` + 16 visible hex characters (``License.key_prefix``), then the secret."""
    prefix = f"{LICENSE_KEY_PREFIX}{secrets.token_hex(_KEY_PREFIX_CHARS // 2)}"
    key = f"{prefix}_{secrets.token_urlsafe(_KEY_SECRET_BYTES)}"
    return NewLicenseKey(prefix=prefix, key=key, key_hash=license_key_hash(key))
