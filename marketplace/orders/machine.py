"""The order state machine, declared in one place.

``TRANSITIONS`` below is the whole table: each transition names the states
it leaves from, the state it goes to and who may take it (the buyer, the listing's provider,
staff in the console, or the system: the auto-accept timer and Stripe's events)::

    requested ──quote (provider)──▶ quoted
    requested, quoted ──pay (buyer)──▶ paid               funds held
    requested, quoted ──cancel (buyer, provider, staff)──▶ canceled
    paid ──start (provider)──▶ in_progress ──deliver (provider)──▶ delivered
    delivered ──request_revision (buyer, up to the package's revisions)──▶ revision_requested
    revision_requested ──deliver (provider)──▶ delivered
    delivered ──accept (buyer; system after MARKETPLACE_AUTO_ACCEPT_DAYS)──▶ accepted
    accepted ──release (system, staff)──▶ released        earnings to the provider
    delivered, revision_requested ──dispute (buyer)──▶ disputed
    paid … accepted ──stripe_dispute (system: charge.dispute.created)──▶ disputed
    disputed ──stripe_dispute_won (system)──▶ the state the Stripe dispute found it in
    disputed ──resolve_release (staff)──▶ released
    disputed, released ──partial_refund (staff)──▶ released   part back to the buyer
    paid … released ──refund (staff; system on a full refund or a lost Stripe dispute)──▶ refunded

A transition that is not in the table for the order's state, or taken by someone it does not
name, raises ``OrderTransitionError`` (409, with the current state). Every transition locks
the order row first (``select_for_update``), so concurrent requests on one order serialise: the
second sees the first's state. Each writes an ``OrderEvent`` in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from accounts.models import User
from marketplace.models import Order, OrderEvent
from revenue_site.stripe_errors import BillingError

State = Order.State
Actor = OrderEvent.Actor
DISPUTE_CLOSED_STATUSES = frozenset({"won", "lost", "warning_closed"})


@dataclass(frozen=True)
class Transition:
    """``target`` None: back to the state the order had before its Stripe dispute."""

    name: str
    sources: frozenset[str]
    target: str | None
    actors: frozenset[str]


def _t(name: str, sources: set[str], target: str | None, actors: set[str]) -> Transition:
    return Transition(name, frozenset(sources), target, frozenset(actors))


_FUNDED = {State.PAID, State.IN_PROGRESS, State.DELIVERED, State.REVISION_REQUESTED}


TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in [
        _t("quote", {State.REQUESTED}, State.QUOTED, {Actor.PROVIDER}),
        _t("pay", {State.REQUESTED, State.QUOTED}, State.PAID, {Actor.BUYER}),
        _t(
            "cancel",
            {State.REQUESTED, State.QUOTED},
            State.CANCELED,
            {Actor.BUYER, Actor.PROVIDER, Actor.STAFF},
        ),
        _t("start", {State.PAID}, State.IN_PROGRESS, {Actor.PROVIDER}),
        _t(
            "deliver",
            {State.IN_PROGRESS, State.REVISION_REQUESTED},
            State.DELIVERED,
            {Actor.PROVIDER},
        ),
        _t("request_revision", {State.DELIVERED}, State.REVISION_REQUESTED, {Actor.BUYER}),
        _t("accept", {State.DELIVERED}, State.ACCEPTED, {Actor.BUYER, Actor.SYSTEM}),
        _t("release", {State.ACCEPTED}, State.RELEASED, {Actor.SYSTEM, Actor.STAFF}),
        _t("dispute", {State.DELIVERED, State.REVISION_REQUESTED}, State.DISPUTED, {Actor.BUYER}),
        _t("stripe_dispute", _FUNDED | {State.ACCEPTED}, State.DISPUTED, {Actor.SYSTEM}),
        _t("stripe_dispute_won", {State.DISPUTED}, None, {Actor.SYSTEM}),
        _t("resolve_release", {State.DISPUTED}, State.RELEASED, {Actor.STAFF}),
        _t("partial_refund", {State.DISPUTED, State.RELEASED}, State.RELEASED, {Actor.STAFF}),
        _t(
            "refund",
            _FUNDED | {State.ACCEPTED, State.DISPUTED, State.RELEASED},
            State.REFUNDED,
            {Actor.STAFF, Actor.SYSTEM},
        ),
    ]
}


# The transitions the API takes (URL name → transition); the others are staff's or the system's.
API_TRANSITIONS = {
    "quote": "quote",
    "pay": "pay",
    "start": "start",
    "deliver": "deliver",
    "request-revision": "request_revision",
    "accept": "accept",
    "dispute": "dispute",
    "cancel": "cancel",
}
STAFF_TRANSITIONS = ("resolve_release", "partial_refund", "refund", "release", "cancel")

# Money stays where it is while a Stripe dispute on the order's charge is open: Stripe holds
# the disputed funds and refuses refunds of a disputed charge.
MONEY_TRANSITIONS = frozenset({"release", "resolve_release", "partial_refund", "refund"})


class OrderTransitionError(BillingError):
    """The transition is not allowed from the order's state, or not by this actor (409)."""

    code = "invalid_transition"
    http_status = 409

    def __init__(self, message: str, *, state: str):
        super().__init__(message)
        self.state = state


def stripe_dispute_open(order: Order) -> bool:
    """Whether Stripe holds funds of ``order`` for a dispute that is not decided yet."""
    return order.disputed_amount > 0 and order.stripe_dispute_status not in DISPUTE_CLOSED_STATUSES


def _allowed(order: Order, spec: Transition, actor: str) -> bool:
    return (
        order.state in spec.sources
        and actor in spec.actors
        and not (spec.name in MONEY_TRANSITIONS and stripe_dispute_open(order))
    )


def transition_allowed(*, order: Order, transition: str, actor: str) -> bool:
    spec = TRANSITIONS.get(transition)
    return spec is not None and _allowed(order, spec, actor)


def transitions_available(*, order: Order, actor: str) -> list[str]:
    """The transitions ``actor`` may take on ``order`` now (in table order)."""
    return [name for name, spec in TRANSITIONS.items() if _allowed(order, spec, actor)]


def order_actor(*, order: Order, user: User) -> str | None:
    """The buyer or the provider of ``order``, or None for anyone else."""
    if order.buyer_id == user.pk:
        return Actor.BUYER
    if order.provider.user_id == user.pk:
        return Actor.PROVIDER
    return None


def _check(order: Order, transition: str, actor: str) -> Transition:
    spec = TRANSITIONS[transition]
    if order.state not in spec.sources:
        raise OrderTransitionError(
            f"Order {order.pk} is {order.state}: it cannot {transition.replace('_', ' ')}.",
            state=order.state,
        )
    if actor not in spec.actors:
        raise OrderTransitionError(
            f"The {actor} cannot {transition.replace('_', ' ')} an order.", state=order.state
        )
    if transition in MONEY_TRANSITIONS and stripe_dispute_open(order):
        raise OrderTransitionError(
            f"Stripe dispute {order.stripe_dispute_id} on order {order.pk}'s payment is open: "
            "no money moves until Stripe decides it.",
            state=order.state,
        )
    return spec


def _move(
    order: Order,
    transition: str,
    *,
    actor: str,
    user: User | None,
    note: str = "",
    amount: int | None = None,
    at: datetime | None = None,
    target: str | None = None,
) -> OrderEvent:
    """Check and take ``transition`` on a locked ``order``; save it and record the event.
    ``target`` is the state a transition without one in the table goes to."""
    spec = _check(order, transition, actor)
    to_state = spec.target or target
    if to_state is None:
        raise ValueError(f"{transition} needs a target state")
    at = at or timezone.now()
    event = OrderEvent.objects.create(
        order=order,
        transition=transition,
        from_state=order.state,
        to_state=to_state,
        actor=actor,
        actor_user=user,
        amount=amount,
        note=note,
        at=at,
    )
    order.state = to_state
    order.save()
    return event


def _note(order: Order, what: str, *, note: str, amount: int | None = None) -> None:
    """An event that changes no state (e.g. a Stripe dispute on a released order)."""
    OrderEvent.objects.create(
        order=order,
        transition=what,
        from_state=order.state,
        to_state=order.state,
        actor=Actor.SYSTEM,
        amount=amount,
        note=note,
        at=timezone.now(),
    )


def _locked(order: Order | int) -> Order:
    pk = order if isinstance(order, int) else order.pk
    return (
        Order.objects.select_for_update(of=("self",))
        .select_related("provider", "package")
        .get(pk=pk)
    )


def _actor(order: Order, user: User) -> str:
    actor = order_actor(order=order, user=user)
    if actor is None:  # callers scope reads first; this is a programming error guard
        raise Order.DoesNotExist(f"order {order.pk} is not {user.pk}'s")
    return actor
