"""Recompute all MRR history from Stripe's events and compare it with the stored movements
(``python manage.py analytics_rebuild``, issue 13 part 1).

The replay reads dj-stripe's Event mirror (every ``customer.subscription.*`` event our inbox
processed), in the order of (``created``, lifecycle rank, ``id``: :func:`event_order`), and
does what the webhook path does with each
(``subscriptions.services.subscription_state.subscription_state_apply``): discounts listed by id
are filled in from the subscription mirror, the subscription's MRR comes from
``analytics.mrr.subscription_mrr`` at the event's time, an event older than the subscription's
last applied one changes nothing (a same-second event cannot bring a canceled subscription
back), and each change is classified at customer level per currency
(``analytics.services.movement_kind``). The result is deterministic: it depends on the events
only, not on the order they were delivered in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from django.db import transaction
from django.db.models import Case, IntegerField, Value, When
from djstripe import models as djm

from analytics.models import MRRCohortChange, MRRMovement, MRRSnapshot, SnapshotCursor
from analytics.mrr import subscription_mrr
from analytics.services import SnapshotRun, movement_kind, mrr_snapshots_compute
from analytics.snapshots import CURSOR_NAME
from revenue_site.stripe_payloads import stripe_id

SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
)
Key = tuple[str, str]  # (source_event_id, stripe_subscription_id): the rows' unique key
FIELDS = ("stripe_customer_id", "kind", "old_mrr", "new_mrr", "currency", "occurred_at")


@dataclass(frozen=True)
class Expected:
    """One movement as the replay computes it."""

    source_event_id: str
    stripe_subscription_id: str
    stripe_customer_id: str
    kind: str
    old_mrr: int
    new_mrr: int
    currency: str
    occurred_at: datetime

    @property
    def key(self) -> Key:
        return (self.source_event_id, self.stripe_subscription_id)

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in FIELDS)


@dataclass
class SubscriptionReplayState:
    status: str
    currency: str
    mrr: int
    as_of: datetime


def _is_expanded(discount: Any) -> bool:
    return isinstance(discount, Mapping)


def _mirrored_discounts() -> dict[str, dict[str, Any]]:
    """Expanded discounts of the subscription mirror, by subscription and discount id (what
    ``subscriptions.stripe_expand.subscription_discounts_expanded`` looks up per event)."""
    found: dict[str, dict[str, Any]] = {}
    rows = (
        djm.Subscription.objects.exclude(stripe_data__discounts=[])
        .exclude(stripe_data__discounts__isnull=True)
        .values_list("id", "stripe_data")
        .iterator(chunk_size=2000)
    )
    for sub_id, data in rows:
        for discount in (data or {}).get("discounts") or []:
            if _is_expanded(discount):
                found.setdefault(sub_id, {})[stripe_id(discount)] = discount
    return found


# Stripe's ``created`` has one-second resolution: events of one subscription in the same second
# are taken in lifecycle order (created, then updated, then deleted), then by id, so the result
# never depends on the order they were delivered in.
EVENT_RANK = {
    "customer.subscription.created": 0,
    "customer.subscription.updated": 1,
    "customer.subscription.paused": 1,
    "customer.subscription.resumed": 1,
    "customer.subscription.deleted": 2,
}

SubscriptionEvent = tuple[str, datetime, str, dict[str, Any]]  # (id, created, type, object)


def event_order(event: SubscriptionEvent) -> tuple[datetime, int, str]:
    """The order subscription events are applied in: (``created``, lifecycle rank, id)."""
    event_id, created, event_type, _ = event
    return (created, EVENT_RANK.get(event_type, 1), event_id)


def _events() -> Iterator[SubscriptionEvent]:
    rank = Case(
        *(When(type=name, then=Value(value)) for name, value in EVENT_RANK.items()),
        default=Value(1),
        output_field=IntegerField(),
    )
    rows = (
        djm.Event.objects.filter(type__in=SUBSCRIPTION_EVENTS)
        .annotate(rank=rank)
        .order_by("created", "rank", "id")
        .values_list("id", "created", "type", "data")
        .iterator(chunk_size=2000)
    )
    for event_id, created, event_type, data in rows:
        subscription = (data or {}).get("object")
        if isinstance(subscription, Mapping) and created is not None:
            yield event_id, created, event_type, dict(subscription)


class Replay:
    """Subscription events applied in :func:`event_order`, as the webhook path applies them:
    each subscription's state (an event older than its last applied one changes nothing, a
    same-second event cannot bring a canceled subscription back), an expected movement per MRR
    change, classified against the customer's MRR per currency.

    ``subscriptions`` and ``customers`` may start from a known state (the movements before a
    point in time); the caller expands discounts listed by id before ``apply``.
    """

    def __init__(self) -> None:
        self.subscriptions: dict[str, SubscriptionReplayState] = {}
        self.customers: dict[tuple[str, str], tuple[int, bool]] = {}  # (total, had movements)
        self.expected: list[Expected] = []

    def start(self, *, sub_id: str, currency: str, mrr: int, as_of: datetime) -> None:
        """A subscription's state before the replayed events (its last movement's)."""
        self.subscriptions[sub_id] = SubscriptionReplayState("", currency, mrr, as_of)

    def customer_start(self, *, customer_id: str, currency: str, total: int) -> None:
        self.customers[(customer_id, currency)] = (total, True)

    def apply(self, event_id: str, created: datetime, subscription: Mapping[str, Any]) -> None:
        sub_id = stripe_id(subscription.get("id"))
        customer_id = stripe_id(subscription.get("customer"))
        status = str(subscription.get("status") or "")
        currency, mrr = subscription_mrr(subscription, at=created)
        state = self.subscriptions.get(sub_id)
        if state is None:
            old_mrr = 0
            state = self.subscriptions[sub_id] = SubscriptionReplayState(
                status, currency, mrr, created
            )
        else:
            stale = created < state.as_of or (
                created == state.as_of and state.status == "canceled" and status != "canceled"
            )
            if stale:
                return
            old_mrr = state.mrr
            state.status, state.mrr, state.as_of = status, mrr, created
            state.currency = currency or state.currency
        if mrr == old_mrr:
            return
        movement_currency = state.currency.lower()
        total, had = self.customers.get((customer_id, movement_currency), (0, False))
        kind = movement_kind(customer_before=total, delta=mrr - old_mrr, had_movements=had)
        self.customers[(customer_id, movement_currency)] = (total + mrr - old_mrr, True)
        self.expected.append(
            Expected(
                source_event_id=event_id,
                stripe_subscription_id=sub_id,
                stripe_customer_id=customer_id,
                kind=str(kind),
                old_mrr=old_mrr,
                new_mrr=mrr,
                currency=movement_currency,
                occurred_at=created,
            )
        )


def movements_replay() -> list[Expected]:
    """Every MRR movement the subscription events imply, in time order."""
    discounts = _mirrored_discounts()
    replay = Replay()
    for event_id, created, _, subscription in _events():
        sub_id = stripe_id(subscription.get("id"))
        listed = list(subscription.get("discounts") or [])
        if not all(_is_expanded(d) for d in listed):
            known = discounts.get(sub_id, {})
            subscription["discounts"] = [
                d if _is_expanded(d) else known.get(stripe_id(d), d) for d in listed
            ]
        replay.apply(event_id, created, subscription)
    return replay.expected


@transaction.atomic
def customer_movements_rebuild(
    *, stripe_customer_id: str, since: datetime, events: list[SubscriptionEvent]
) -> dict[str, SubscriptionReplayState] | None:
    """Make one customer's movements from ``since`` on what replaying ``events`` says.

    For an event delivered out of order (the webhook path): ``events`` are every applied
    subscription event of the customer created at or after ``since`` (discounts expanded),
    the late one included. The state before ``since`` comes from the stored movements (each
    subscription's last one, the customer's totals per currency); the events are replayed in
    :func:`event_order` from there, so the movements end as in-order delivery would have left
    them. Stored rows of the window that differ are replaced, and the daily snapshots from the
    earliest touched day on are dropped (the snapshot task recomputes them, the reports replay
    meanwhile), as ``analytics_rebuild --apply`` does.

    Returns the replayed subscriptions' final states, or None, changing nothing, when a
    stored movement of the window comes from an event not in ``events`` (pruned from the
    inbox): then only ``analytics_rebuild`` can tell.
    The caller serialises the customer's changes (``subscription_state_apply`` locks it).
    """
    replay = Replay()
    before = MRRMovement.objects.filter(
        stripe_customer_id=stripe_customer_id, occurred_at__lt=since
    ).order_by("occurred_at", "pk")
    totals: dict[str, int] = {}
    for row in before.values_list(
        "stripe_subscription_id", "currency", "old_mrr", "new_mrr", "occurred_at"
    ):
        sub_id, currency, old_mrr, new_mrr, occurred_at = row
        replay.start(sub_id=sub_id, currency=currency, mrr=new_mrr, as_of=occurred_at)
        totals[currency] = totals.get(currency, 0) + new_mrr - old_mrr
    for currency, total in totals.items():
        replay.customer_start(customer_id=stripe_customer_id, currency=currency, total=total)
    stored = {
        (row["source_event_id"], row["stripe_subscription_id"]): row
        for row in MRRMovement.objects.filter(
            stripe_customer_id=stripe_customer_id, occurred_at__gte=since
        ).values("pk", "source_event_id", "stripe_subscription_id", *FIELDS)
    }
    known = {event[0] for event in events}
    if any(source not in known for source, _ in stored):
        return None
    for event_id, created, _, subscription in sorted(events, key=event_order):
        replay.apply(event_id, created, subscription)
    wanted = {e.key: e for e in replay.expected}
    touched: dict[str, date] = {}

    def touch(currency: str, at: datetime) -> None:
        day = at.astimezone(UTC).date()
        touched[currency] = min(day, touched.get(currency, day))

    stale = []
    for key, row in stored.items():
        e = wanted.get(key)
        if e is None or tuple(row[name] for name in FIELDS) != e.values():
            stale.append(row["pk"])
            touch(row["currency"], row["occurred_at"])
    fresh = [
        e
        for key, e in wanted.items()
        if key not in stored or tuple(stored[key][name] for name in FIELDS) != e.values()
    ]
    for e in fresh:
        touch(e.currency, e.occurred_at)
    MRRMovement.objects.filter(pk__in=stale).delete()
    MRRMovement.objects.bulk_create(
        [
            MRRMovement(
                source_event_id=e.source_event_id,
                stripe_subscription_id=e.stripe_subscription_id,
                **dict(zip(FIELDS, e.values(), strict=True)),
            )
            for e in fresh
        ]
    )
    for currency, day in touched.items():
        MRRSnapshot.objects.filter(currency=currency, date__gte=day).delete()
    return replay.subscriptions


@dataclass
class Diff:
    """How the stored movements differ from the replay."""

    missing: list[Expected] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    different: list[tuple[dict[str, Any], Expected]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.different)

    def lines(self) -> Iterator[str]:
        for e in self.missing:
            yield (
                f"missing {e.source_event_id} {e.stripe_subscription_id}: {e.kind} "
                f"{e.old_mrr}->{e.new_mrr} {e.currency} {e.stripe_customer_id} "
                f"at {e.occurred_at.isoformat()}"
            )
        for row in self.extra:
            yield (
                f"extra {row['source_event_id']} {row['stripe_subscription_id']}: {row['kind']} "
                f"{row['old_mrr']}->{row['new_mrr']} {row['currency']} (pk {row['pk']})"
            )
        for row, e in self.different:
            changes = ", ".join(
                f"{name} {row[name]} != {getattr(e, name)}"
                for name in FIELDS
                if row[name] != getattr(e, name)
            )
            yield f"different {e.source_event_id} {e.stripe_subscription_id}: {changes}"


def movements_diff(expected: list[Expected]) -> Diff:
    """Compare the replay with the stored rows by their unique key (event, subscription)."""
    wanted = {e.key: e for e in expected}
    diff = Diff()
    stored = MRRMovement.objects.order_by("occurred_at", "pk").values(
        "pk", "source_event_id", "stripe_subscription_id", *FIELDS
    )
    seen: set[Key] = set()
    for row in stored.iterator(chunk_size=5000):
        key = (row["source_event_id"], row["stripe_subscription_id"])
        seen.add(key)
        e = wanted.get(key)
        if e is None:
            diff.extra.append(row)
        elif tuple(row[name] for name in FIELDS) != e.values():
            diff.different.append((row, e))
    diff.missing = [e for e in expected if e.key not in seen]
    return diff


@transaction.atomic
def movements_rebuild_apply(*, diff: Diff) -> SnapshotRun:
    """Make the stored movements what the replay says (one transaction): delete the extra and
    different rows, insert the missing and the corrected ones; then recompute the daily
    snapshots of each touched currency from the earliest touched day on."""
    touched: dict[str, date] = {}

    def touch(currency: str, at: datetime) -> None:
        day = at.astimezone(UTC).date()
        touched[currency] = min(day, touched.get(currency, day))

    stale = [row["pk"] for row in diff.extra] + [row["pk"] for row, _ in diff.different]
    for row in diff.extra:
        touch(row["currency"], row["occurred_at"])
    for row, _ in diff.different:
        touch(row["currency"], row["occurred_at"])
    MRRMovement.objects.filter(pk__in=stale).delete()
    fresh = diff.missing + [e for _, e in diff.different]
    for e in fresh:
        touch(e.currency, e.occurred_at)
    MRRMovement.objects.bulk_create(
        [
            MRRMovement(
                source_event_id=e.source_event_id,
                stripe_subscription_id=e.stripe_subscription_id,
                **dict(zip(FIELDS, e.values(), strict=True)),
            )
            for e in fresh
        ],
        batch_size=2000,
    )
    for currency, day in touched.items():
        # The snapshot task carries on from the last stored day: drop the touched ones.
        MRRSnapshot.objects.filter(currency=currency, date__gte=day).delete()
    return mrr_snapshots_compute()


@transaction.atomic
def snapshots_rebuild() -> SnapshotRun:
    """Drop every stored daily snapshot and cohort change and compute them all again from the
    stored movements, in one transaction (no days-per-run bound)."""
    MRRSnapshot.objects.all().delete()
    MRRCohortChange.objects.all().delete()
    SnapshotCursor.objects.filter(name=CURSOR_NAME).delete()
    return mrr_snapshots_compute()
