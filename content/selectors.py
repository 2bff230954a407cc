"""Content reads. The APIs and the admin call these, so their query counts are decided here."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import TruncDate

from accounts.models import User
from content.models import (
    LIMIT_FOR_EVENT,
    ContentItem,
    ContentShare,
    Creator,
    License,
    LicenseType,
    LicenseUsage,
)
from content.services import PAYEE_TYPE
from ledger.models import PayeeProfile, Payout


def creator_for_user(*, user: User) -> Creator | None:
    return Creator.objects.filter(user=user).first()


def creators_by_id(*, ids: list[int]) -> dict[int, Creator]:
    return {creator.pk: creator for creator in Creator.objects.filter(pk__in=ids)}


# --- catalog (public) --------------------------------------------------------------------


def catalog_list(
    *, kind: str | None = None, creator_id: int | None = None
) -> QuerySet[ContentItem]:
    """Published items of active creators (a suspended creator's items are off sale), newest
    first, with their owner and active licence types (2 queries)."""
    items = (
        ContentItem.objects.filter(
            status=ContentItem.Status.PUBLISHED, owner__status=Creator.Status.ACTIVE
        )
        .select_related("owner")
        .prefetch_related(
            Prefetch(
                "license_types",
                queryset=LicenseType.objects.filter(is_active=True).order_by("pk"),
                to_attr="active_license_types",
            )
        )
        .order_by("-published_at", "-pk")
    )
    if kind:
        items = items.filter(kind=kind)
    if creator_id is not None:
        items = items.filter(owner_id=creator_id)
    return items


def catalog_get(*, item_id: int) -> ContentItem:
    """One published item; raises ContentItem.DoesNotExist otherwise."""
    return catalog_list().get(pk=item_id)


# --- a creator's own ---------------------------------------------------------------------


def creator_item_list(*, creator: Creator) -> QuerySet[ContentItem]:
    """The creator's items (owned), newest first, with licence types and shares prefetched."""
    return (
        ContentItem.objects.filter(owner=creator)
        .select_related("owner")
        .prefetch_related(
            Prefetch("license_types", queryset=LicenseType.objects.order_by("pk")),
            Prefetch(
                "shares", queryset=ContentShare.objects.select_related("creator").order_by("pk")
            ),
        )
        .order_by("-created_at", "-pk")
    )


def creator_item_get(*, creator: Creator, item_id: int) -> ContentItem:
    """The creator's item; another creator's (or an unknown) id raises DoesNotExist (→ 404)."""
    return creator_item_list(creator=creator).get(pk=item_id)


def creator_license_type_get(
    *, creator: Creator, item_id: int, license_type_id: int
) -> LicenseType:
    return LicenseType.objects.select_related("item").get(
        pk=license_type_id, item_id=item_id, item__owner=creator
    )


def creator_visible_items(*, creator: Creator) -> QuerySet[ContentItem]:
    """The items whose revenue the creator shares in: owned, or co-created (a share row). A
    co-creator sees these items' earnings (their own share) and aggregated usage, never the
    owner's licence list (``content.licensing.creator_license_list`` is owned items only)."""
    shared = ContentShare.objects.filter(item=OuterRef("pk"), creator=creator)
    return ContentItem.objects.filter(Q(owner=creator) | Q(Exists(shared)))


def creator_visible_item_get(*, creator: Creator, item_id: int) -> ContentItem:
    """An item the creator owns or shares; anything else raises DoesNotExist (→ 404)."""
    return creator_visible_items(creator=creator).get(pk=item_id)


def content_shares(*, item: ContentItem) -> list[tuple[Creator, Decimal]]:
    """The item's revenue shares; an item without share rows is 100 % its owner's."""
    rows = list(ContentShare.objects.filter(item=item).select_related("creator").order_by("pk"))
    if not rows:
        return [(item.owner, Decimal(100))]
    return [(row.creator, row.percent) for row in rows]


# --- licences and usage ------------------------------------------------------------------


def buyer_license_list(*, user: User) -> QuerySet[License]:
    """The licences a buyer holds (every status), newest first."""
    return (
        License.objects.filter(holder=user)
        .select_related("license_type")
        .order_by("-created_at", "-pk")
    )


def license_usage_counts(*, license: License) -> dict[str, int]:
    """Units used per event type (``view``, ``download``, ``api_call``), denied attempts
    excluded; every event type is present (0 when unused)."""
    used: dict[str, int] = defaultdict(int)
    rows = (
        LicenseUsage.objects.filter(license=license, denied=False)
        .values("event")
        .annotate(total=Sum("quantity"))
        .order_by()
    )
    for row in rows:
        used[row["event"]] = int(row["total"] or 0)
    return {event: used[event] for event in LIMIT_FOR_EVENT}


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def creator_usage(
    *,
    creator: Creator,
    start: date | None = None,
    end: date | None = None,
    content_id: int | None = None,
    event: str | None = None,
) -> QuerySet[Any, Any]:
    """Usage of licences of the items the creator owns or shares, aggregated by (item, event,
    UTC day), newest day first: accepted units, denied units and how many licences reported.
    An aggregated values queryset (one query per page, plus the count); typed loosely, the
    stubs type each annotation."""
    usage = LicenseUsage.objects.filter(
        license__content__in=Subquery(creator_visible_items(creator=creator).values("pk"))
    )
    if start is not None:
        usage = usage.filter(at__gte=_day_start(start))
    if end is not None:
        usage = usage.filter(at__lt=_day_start(end + timedelta(days=1)))
    if content_id is not None:
        usage = usage.filter(license__content_id=content_id)
    if event is not None:
        usage = usage.filter(event=event)
    return (
        usage.annotate(day=TruncDate("at", tzinfo=UTC))
        .values("license__content_id", "license__content__title", "event", "day")
        .annotate(
            accepted_units=Sum("quantity", filter=Q(denied=False), default=0),
            denied_units=Sum("quantity", filter=Q(denied=True), default=0),
            license_count=Count("license", distinct=True),
        )
        .order_by("-day", "license__content_id", "event")
    )


def creator_payout_list(*, creator: Creator) -> QuerySet[Payout]:
    """The creator's payouts (every status), newest batch first, with the batch joined."""
    return (
        Payout.objects.filter(payee_type=PAYEE_TYPE, payee_id=creator.pk)
        .select_related("batch")
        .order_by("-batch__as_of", "-pk")
    )


# --- admin -------------------------------------------------------------------------------


def creator_list_for_admin() -> QuerySet[Creator]:
    """Creators with their user and how they are paid (``payout_method``: blank when they have
    not said yet), from one query per page."""
    profile = PayeeProfile.objects.filter(payee_type=PAYEE_TYPE, payee_id=OuterRef("pk"))
    return Creator.objects.select_related("user").annotate(
        payout_method=Subquery(profile.values("method")[:1])
    )


def content_item_list_for_admin() -> QuerySet[ContentItem]:
    return ContentItem.objects.select_related("owner", "owner__user")


def license_list_for_admin() -> QuerySet[License]:
    return License.objects.select_related("content", "license_type", "holder")
