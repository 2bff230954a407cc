"""Orders of the services marketplace: the state machine, held funds, release, refunds.

The state machine is ``TRANSITIONS`` below, in one place: each transition names the states
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

Money (minor units of the order's currency; each posting once per idempotency key):

- paid: Dr ``asset.stripe_clearing`` / Cr ``liability.marketplace_held`` (``order:<pk>:paid``);
- released: Dr held (price less refunds) / Cr the provider's payable (their earnings) / Cr
  ``revenue.marketplace`` (the commission: the order's Decimal rate, fixed when it was placed
  from the category's or the provider's override; the provider's part is rounded down, the
  platform gets the remainder, so the parts add up exactly) (``order:<pk>:release``);
- a provider on Stripe Connect is paid at once: a transfer of their earnings with
  ``source_transaction`` (the order's charge) and ``transfer_group`` ``order-<pk>``, booked Dr
  payable / Cr stripe clearing (``order:<pk>:transfer``); a refusal leaves the earnings in the
  payable for the shared payout engine (``ledger.payouts``), which also pays CSV providers;
  Stripe unavailable marks the order ``transfer_pending``: the hourly task looks for a transfer
  of the order's group first (the lost answer may have been a success), then asks again;
- a refund before release: Dr held / Cr stripe clearing; after release: the release posting is
  reversed by the refunded amount (pro rata: the provider's payable and the commission give
  back their shares, ``order:<pk>:clawback:<refunded total>``), then Dr held / Cr clearing; when
  the earnings were transferred, the provider's share is taken back from the connected account
  (a transfer reversal), booked Dr clearing / Cr payable. The provider's payable ends at what
  they keep; for CSV providers already paid it goes negative and the next payout nets it;
- a Stripe dispute (see ``order_stripe_dispute_opened``): Stripe takes the disputed funds
  when it opens, so they are booked then, once per dispute (``order:<pk>:dispute:<id>``):
  after a release the release is reversed by the disputed amount first (the provider's
  payable and the commission give back their shares, ``…:clawback``) and the provider's
  share is taken back from the connected account when it was transferred; then Dr held / Cr
  stripe clearing. While it is open no money moves on the order (release, refunds: 409). Won:
  the dispute's postings are booked back with their lines negated
  (``order:<pk>:dispute_won:<id>``; the provider's share is then in their payable, paid by the
  payout engine) and the order goes back to the state the dispute found it in. Lost: the
  reversals stand (one per dispute, never two); the whole price lost closes the order.

Stripe's processing and dispute fees are booked for every charge by
``subscriptions.services.stripe_fees`` (``charge.succeeded``, dispute events): nothing here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import User
from ledger.chart import SystemAccount
from ledger.models import Account, Entry, PayeeProfile, Transaction
from ledger.payouts import connect_not_ready
from ledger.services import (
    Line,
    account_for_payee,
    ledger_post,
    ledger_reverse_in_order,
    system_account,
)
from marketplace.models import Listing, ListingPackage, Order, OrderEvent, OrderMessage
from revenue_site.money import split_with_platform_remainder
from revenue_site.stripe_errors import BillingError, StripeUnavailable, stripe_errors
from revenue_site.stripe_payloads import dispute_is_inquiry, stripe_id, stripe_time
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)

State = Order.State
Actor = OrderEvent.Actor
PAYEE_TYPE = Account.PayeeType.PROVIDER.value
METADATA_KEY = "marketplace_order"
HUNDRED = Decimal(100)

PAID_SOURCE = "marketplace.order_paid"
RELEASE_SOURCE = "marketplace.order_release"
TRANSFER_SOURCE = "marketplace.order_transfer"
REFUND_SOURCE = "marketplace.order_refund"
CLAWBACK_SOURCE = "marketplace.order_clawback"
TRANSFER_REVERSAL_SOURCE = "marketplace.order_transfer_reversal"
DISPUTE_SOURCE = "marketplace.order_dispute"
DISPUTE_WON_SOURCE = "marketplace.order_dispute_won"
DISPUTE_CLOSED_STATUSES = frozenset({"won", "lost", "warning_closed"})


# --- the state machine ---------------------------------------------------------------------


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


# --- placing and moving orders ---------------------------------------------------------------


def order_left(order: Order) -> int:
    """What the order still holds for the provider or the buyer: the price less refunds and
    less what Stripe took for a dispute."""
    return order.price - order.refunded_amount - order.disputed_amount


def order_commission_percent(*, listing: Listing) -> Decimal:
    """The platform's commission (%) on an order of ``listing``: the provider's override, else
    the category's."""
    return listing.provider.commission_percent_for(listing.category)


def order_create(
    *, buyer: User, package_id: int, requirements: str = "", payment_method: str | None = None
) -> Order:
    """Order a package of a published listing (``requested``), at the package's price and
    currency, with the commission rate and revisions fixed now. With ``payment_method`` it is
    paid at once (``order_pay``); a declined card leaves it ``requested`` and raises.

    Raises ListingPackage.DoesNotExist (no such package on a published listing of an active
    provider), ValidationError naming ``package`` when the buyer is its provider, and what
    ``order_pay`` raises.
    """
    package = (
        ListingPackage.objects.select_related("listing__provider", "listing__category")
        .filter(
            pk=package_id,
            listing__status=Listing.Status.PUBLISHED,
            listing__provider__status="active",
        )
        .first()
    )
    if package is None:
        raise ListingPackage.DoesNotExist(f"no package {package_id} on sale")
    listing = package.listing
    if listing.provider.user_id == buyer.pk:
        raise ValidationError({"package": ["You cannot order your own listing."]})
    with transaction.atomic():
        order = Order.objects.create(
            buyer=buyer,
            provider=listing.provider,
            listing=listing,
            package=package,
            price=package.price,
            currency=package.currency,
            commission_percent=order_commission_percent(listing=listing),
            requirements=requirements,
            revisions_allowed=package.revisions,
        )
        OrderEvent.objects.create(
            order=order,
            transition="request",
            from_state=State.REQUESTED,
            to_state=State.REQUESTED,
            actor=Actor.BUYER,
            actor_user=buyer,
            amount=order.price,
            note=requirements[:500],
            at=order.created_at,
        )
    if payment_method:
        order_pay(order=order, user=buyer, payment_method=payment_method)
        order.refresh_from_db()
    return order


@transaction.atomic
def order_quote(*, order: Order, user: User, price: int | None = None, note: str = "") -> Order:
    """The provider quotes (``requested`` → ``quoted``), optionally at a custom ``price``
    (minor units of the order's currency, ≥ 0). Raises OrderTransitionError, ValidationError."""
    order = _locked(order)
    if price is not None and (isinstance(price, bool) or not isinstance(price, int) or price < 0):
        raise ValidationError({"price": ["A whole number of minor units, at least 0."]})
    actor = _actor(order, user)
    _check(order, "quote", actor)
    if price is not None:
        order.price = price
    order.quote_note = note
    order.quoted_at = timezone.now()
    _move(order, "quote", actor=actor, user=user, note=note, amount=order.price)
    return order


def _actor(order: Order, user: User) -> str:
    actor = order_actor(order=order, user=user)
    if actor is None:  # callers scope reads first; this is a programming error guard
        raise Order.DoesNotExist(f"order {order.pk} is not {user.pk}'s")
    return actor


@transaction.atomic
def order_pay(*, order: Order, user: User, payment_method: str) -> Order:
    """The buyer pays the order's price with ``payment_method`` (a Stripe id): a PaymentIntent
    confirmed at once (key from the order and the payment method, ``metadata.marketplace_order``,
    ``transfer_group`` ``order-<pk>``). The order is ``paid`` and its funds held when the charge
    succeeds (now, or on ``payment_intent.succeeded`` after authentication).

    The row lock is held across the Stripe call, so one order is never charged twice. Raises
    OrderTransitionError, ValidationError (``payment_method``), and the ``stripe_errors``
    kinds (PaymentDeclined 402, …), after which nothing changed.
    """
    order = _locked(order)
    actor = _actor(order, user)
    _check(order, "pay", actor)
    if not isinstance(payment_method, str) or not payment_method.strip():
        raise ValidationError({"payment_method": ["A Stripe payment method id."]})
    if order.price == 0:
        _paid(order, amount=0, charge_id="", pi_id="", at=timezone.now())
        return order
    with stripe_errors(param_fields={"payment_method": "payment_method"}):
        intent = stripe.PaymentIntent.create(
            amount=order.price,
            currency=order.currency,
            payment_method=payment_method.strip(),
            payment_method_types=["card"],
            confirm=True,
            metadata={METADATA_KEY: str(order.pk)},
            transfer_group=transfer_group(order),
            description=f"Order {order.pk}: {order.listing_id}",
            api_key=stripe_api_key(),
            idempotency_key=f"marketplace-order-{order.pk}-pi-{payment_method.strip()}",
        )
    data = intent.to_dict()
    order.stripe_payment_intent_id = intent.id
    order.save(update_fields=["stripe_payment_intent_id", "updated_at"])
    if data.get("status") == "succeeded":
        _payment_succeeded(order, data, at=timezone.now())
    return order


def transfer_group(order: Order) -> str:
    return f"order-{order.pk}"


def _paid(order: Order, *, amount: int, charge_id: str, pi_id: str, at: datetime) -> None:
    order.paid_at = at
    order.stripe_charge_id = charge_id
    order.stripe_payment_intent_id = pi_id
    if amount:
        ledger_post(
            idempotency_key=f"order:{order.pk}:paid",
            source=PAID_SOURCE,
            lines=[
                Line.debit(system_account(SystemAccount.STRIPE_CLEARING), amount, order.currency),
                Line.credit(
                    system_account(SystemAccount.LIABILITY_MARKETPLACE_HELD), amount, order.currency
                ),
            ],
            memo=f"Order {order.pk} paid ({pi_id}): held until release",
            posted_at=at,
        )
    _move(order, "pay", actor=Actor.BUYER, user=order.buyer, amount=amount, at=at)


def _payment_succeeded(order: Order, payment_intent: Mapping[str, Any], *, at: datetime) -> None:
    pi_id = stripe_id(payment_intent.get("id"))
    if order.paid_at is not None:
        return  # booked already (the webhook after the synchronous answer, or a redelivery)
    if order.state not in TRANSITIONS["pay"].sources:
        logger.warning(
            "payment %s for order %s in state %s: refunding", pi_id, order.pk, order.state
        )
        _refund_orphan(pi_id, payment_intent.get("livemode"))
        return
    amount = int(payment_intent.get("amount_received") or payment_intent.get("amount") or 0)
    _paid(
        order,
        amount=amount,
        charge_id=stripe_id(payment_intent.get("latest_charge")),
        pi_id=pi_id,
        at=at,
    )


@stripe_errors()
def _refund_orphan(payment_intent_id: str, livemode: Any) -> None:
    stripe.Refund.create(
        payment_intent=payment_intent_id,
        api_key=stripe_api_key(livemode),
        idempotency_key=f"marketplace-order-orphan-refund-{payment_intent_id}",
    )


@transaction.atomic
def order_payment_succeeded(
    *, payment_intent: Mapping[str, Any], occurred_at: datetime
) -> Order | None:
    """``payment_intent.succeeded`` for an order: it is paid and its funds held (once). A
    payment for an order that was canceled meanwhile is refunded. Returns the order, or None
    for other intents."""
    pk = _metadata_pk(payment_intent)
    if pk is None:
        return None
    order = Order.objects.select_for_update().filter(pk=pk).first()
    if order is None:
        logger.warning("payment for a missing order %s: refunding", pk)
        _refund_orphan(stripe_id(payment_intent.get("id")), payment_intent.get("livemode"))
        return None
    _payment_succeeded(order, payment_intent, at=occurred_at)
    return order


def _metadata_pk(obj: Mapping[str, Any]) -> int | None:
    metadata = obj.get("metadata")
    value = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@transaction.atomic
def order_start(*, order: Order, user: User, note: str = "") -> Order:
    """The provider starts work on a paid order. Raises OrderTransitionError."""
    order = _locked(order)
    _move(order, "start", actor=_actor(order, user), user=user, note=note)
    return order


@transaction.atomic
def order_deliver(*, order: Order, user: User, note: str = "") -> Order:
    """The provider delivers (first time or after a revision request); the auto-accept timer
    counts from now. Raises OrderTransitionError."""
    order = _locked(order)
    actor = _actor(order, user)
    _check(order, "deliver", actor)
    order.delivered_at = timezone.now()
    _move(order, "deliver", actor=actor, user=user, note=note)
    return order


@transaction.atomic
def order_request_revision(*, order: Order, user: User, note: str = "") -> Order:
    """The buyer asks for a revision of a delivery, up to the package's revisions. Raises
    OrderTransitionError (also when none are left)."""
    order = _locked(order)
    actor = _actor(order, user)
    _check(order, "request_revision", actor)
    if order.revisions_used >= order.revisions_allowed:
        raise OrderTransitionError(
            f"No revisions left ({order.revisions_allowed} included).", state=order.state
        )
    order.revisions_used += 1
    _move(order, "request_revision", actor=actor, user=user, note=note)
    return order


@transaction.atomic
def order_dispute(*, order: Order, user: User, note: str = "") -> Order:
    """The buyer disputes a delivery: the funds stay held until staff resolve it."""
    order = _locked(order)
    _move(order, "dispute", actor=_actor(order, user), user=user, note=note)
    return order


@transaction.atomic
def order_cancel(*, order: Order, user: User | None, note: str = "", staff: bool = False) -> Order:
    """Cancel an order before payment (buyer, provider, or staff with ``staff=True``)."""
    order = _locked(order)
    actor = Actor.STAFF if staff else _actor(order, user)  # type: ignore[arg-type]
    _check(order, "cancel", actor)
    order.closed_at = timezone.now()
    _move(order, "cancel", actor=actor, user=user, note=note)
    return order


@transaction.atomic
def _accept(order: Order, *, actor: str, user: User | None, note: str = "") -> Order:
    order = _locked(order)
    if actor != Actor.SYSTEM:
        actor = _actor(order, user)  # type: ignore[arg-type]
    _check(order, "accept", actor)
    order.accepted_at = timezone.now()
    _move(order, "accept", actor=actor, user=user, note=note)
    return order


def order_accept(*, order: Order, user: User | None, note: str = "") -> Order:
    """The buyer (``user``; None: the auto-accept timer) accepts the delivery; the funds are
    then released (``order_release``) in a transaction of its own, so an acceptance is never
    undone by the release; an order left ``accepted`` is released by the hourly task. Raises
    OrderTransitionError."""
    order = _accept(
        order, actor=Actor.SYSTEM if user is None else Actor.BUYER, user=user, note=note
    )
    try:
        return order_release(order=order)
    except StripeUnavailable:
        logger.warning("order %s accepted; its release waits for Stripe", order.pk)
        order.refresh_from_db()
        return order


# --- release and the provider's transfer ----------------------------------------------------


def provider_connect_account(*, provider_id: int) -> str:
    """The provider's connected account id when they are paid through Stripe Connect and their
    onboarding is complete ("" otherwise: Stripe would refuse the transfer, so the earnings
    stay in their payable for the payout engine, which skips them until it is)."""
    profile = PayeeProfile.objects.filter(payee_type=PAYEE_TYPE, payee_id=provider_id).first()
    if profile is None or profile.method != PayeeProfile.Method.STRIPE_CONNECT:
        return ""
    return "" if connect_not_ready(profile) else profile.stripe_account_id


def order_split(*, amount: int, commission_percent: Decimal) -> dict[str, int]:
    """{"provider": earnings, "platform": commission} of ``amount``: the provider's part rounded
    down, the platform takes the remainder; they add up to ``amount``."""
    rate = (HUNDRED - commission_percent) / HUNDRED
    return split_with_platform_remainder(amount, {"provider": rate})


@transaction.atomic
def order_release(
    *,
    order: Order,
    user: User | None = None,
    transition: str = "release",
    note: str = "",
    refund_first: int = 0,
) -> Order:
    """Release the held funds (price less refunds) of an accepted order (system / staff
    ``user``), or of a disputed one (staff: ``resolve_release``, or ``partial_refund`` after
    refunding ``refund_first``): the provider's earnings to their payable, the commission to
    revenue, one posting; then a Connect transfer of the earnings (see the module docstring).

    Exactly once: the row lock serialises releases and the state decides; the transfer's
    idempotency key is the order's. Stripe unavailable for the transfer does not undo the
    release: the order is marked ``transfer_pending`` and the hourly task transfers it. Raises
    OrderTransitionError (and, with ``refund_first``, the refund's Stripe errors).
    """
    order = _locked(order)
    actor = Actor.SYSTEM if user is None else Actor.STAFF
    _check(order, transition, actor)
    now = timezone.now()
    if refund_first:
        _refund(order, amount=refund_first, user=user, at=now)
    amount = order_left(order)
    parts = {"provider": 0, "platform": 0}
    if amount > 0:
        parts = order_split(amount=amount, commission_percent=order.commission_percent)
        lines = [
            Line.debit(
                system_account(SystemAccount.LIABILITY_MARKETPLACE_HELD), amount, order.currency
            )
        ]
        if parts["provider"]:
            lines.append(Line.credit(_payable(order), parts["provider"], order.currency))
        if parts["platform"]:
            lines.append(
                Line.credit(
                    system_account(SystemAccount.REVENUE_MARKETPLACE),
                    parts["platform"],
                    order.currency,
                )
            )
        ledger_post(
            idempotency_key=f"order:{order.pk}:release",
            source=RELEASE_SOURCE,
            lines=lines,
            memo=f"Order {order.pk} released: {parts['provider']} to provider "
            f"{order.provider_id}, {parts['platform']} commission",
            posted_at=now,
        )
    order.released_at = now
    _move(order, transition, actor=actor, user=user, note=note, amount=amount, at=now)
    if parts["provider"]:
        _transfer(order, parts["provider"], at=now)
    return order


def _payable(order: Order) -> Account:
    return account_for_payee(payee_type=PAYEE_TYPE, payee_id=order.provider_id)


def _transfer(order: Order, amount: int, *, at: datetime) -> None:
    """Pay a Connect provider's earnings of a locked, released order (see the module
    docstring). Stripe unavailable: the order is marked ``transfer_pending`` and the hourly
    task retries. Stripe keeps a failed answer under its idempotency key, so a retry first
    looks for a transfer of the order's group (the lost answer may have been a success) and
    only then asks again under a new key."""
    destination = provider_connect_account(provider_id=order.provider_id)
    if not destination or order.stripe_transfer_id:
        return  # CSV provider (the payout engine pays them), or transferred already
    params: dict[str, Any] = {
        "amount": amount,
        "currency": order.currency,
        "destination": destination,
        "transfer_group": transfer_group(order),
        "metadata": {METADATA_KEY: str(order.pk)},
        "description": f"Order {order.pk}",
    }
    if order.stripe_charge_id:
        # Ties the transfer to the buyer's charge: it waits for those funds, not our balance.
        params["source_transaction"] = order.stripe_charge_id
    try:
        with stripe_errors():
            transfer = _transfer_made(order, destination) if order.transfer_attempts else None
            if transfer is None:
                transfer = stripe.Transfer.create(
                    **params,
                    api_key=stripe_api_key(),
                    idempotency_key=f"marketplace-order-{order.pk}-transfer:{destination}"
                    f":{order.transfer_attempts}",
                )
    except StripeUnavailable as exc:
        order.transfer_attempts += 1
        order.transfer_pending = True
        order.save(update_fields=["transfer_attempts", "transfer_pending", "updated_at"])
        _note(order, "transfer_pending", note=exc.message[:500], amount=amount)
        return
    except BillingError as exc:
        logger.warning(
            "order %s: transfer to %s refused (%s); the payout engine pays the payable",
            order.pk,
            destination,
            exc.message,
        )
        order.transfer_pending = False
        order.save(update_fields=["transfer_pending", "updated_at"])
        _note(order, "transfer_refused", note=exc.message[:500], amount=amount)
        return
    ledger_post(
        idempotency_key=f"order:{order.pk}:transfer",
        source=TRANSFER_SOURCE,
        lines=[
            Line.debit(_payable(order), amount, order.currency),
            Line.credit(system_account(SystemAccount.STRIPE_CLEARING), amount, order.currency),
        ],
        memo=f"Order {order.pk}: transfer {transfer.id} to {destination}",
        posted_at=at,
    )
    order.stripe_transfer_id = transfer.id
    order.transferred_amount = amount
    order.transfer_pending = False
    order.save(
        update_fields=["stripe_transfer_id", "transferred_amount", "transfer_pending", "updated_at"]
    )


def _transfer_made(order: Order, destination: str) -> Any:
    found = stripe.Transfer.list(
        transfer_group=transfer_group(order),
        destination=destination,
        limit=10,
        api_key=stripe_api_key(),
    )
    for transfer in found.data:
        metadata = transfer.to_dict().get("metadata") or {}
        if metadata.get(METADATA_KEY) == str(order.pk):
            return transfer
    return None


@transaction.atomic
def order_transfer_retry(*, order: Order) -> Order:
    """Retry the Connect transfer of a released order whose transfer waited on Stripe. When
    the provider's payable no longer holds the earnings (the payout engine paid them
    meanwhile), nothing is transferred."""
    order = _locked(order)
    if not order.transfer_pending or order.stripe_transfer_id or order.state != State.RELEASED:
        return order
    amount = order_split(amount=order_left(order), commission_percent=order.commission_percent)[
        "provider"
    ]
    owed = -sum(
        Entry.objects.filter(account=_payable(order), currency=order.currency).values_list(
            "amount", flat=True
        )
    )
    if amount <= 0 or owed < amount:
        order.transfer_pending = False
        order.save(update_fields=["transfer_pending", "updated_at"])
        _note(order, "transfer_skipped", note="Paid by the payout engine", amount=amount)
        return order
    _transfer(order, amount, at=timezone.now())
    return order


# --- refunds -------------------------------------------------------------------------------


def _refund(order: Order, *, amount: int, user: User | None, at: datetime) -> None:
    """Refund ``amount`` of a locked order through Stripe and book it."""
    left = order_left(order)
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= left:
        raise ValidationError({"amount": [f"Between 1 and {left} (minor units left to refund)."]})
    new_total = order.refunded_amount + amount
    if order.stripe_payment_intent_id:
        with stripe_errors():
            stripe.Refund.create(
                payment_intent=order.stripe_payment_intent_id,
                amount=amount,
                metadata={METADATA_KEY: str(order.pk)},
                api_key=stripe_api_key(),
                idempotency_key=f"marketplace-order-{order.pk}-refund-to-{new_total}",
            )
    _refund_book(order, new_total=new_total, at=at, source=REFUND_SOURCE)


def _release_posting(order: Order) -> Transaction | None:
    return Transaction.objects.filter(
        source=RELEASE_SOURCE, idempotency_key=f"order:{order.pk}:release"
    ).first()


def _release_postings(order: Order) -> list[Transaction]:
    """The release, then the postings that booked it back after won disputes: what a refund
    or a dispute after the release reverses, in that order."""
    release = _release_posting(order)
    if release is None:
        return []
    booked_back = Transaction.objects.filter(
        source=DISPUTE_WON_SOURCE,
        idempotency_key__startswith=f"order:{order.pk}:dispute_won:",
        idempotency_key__endswith=":release",
    ).order_by("pk")
    return [release, *booked_back]


def _clawback(
    order: Order, *, amount: int, key: str, ref: str, source: str, memo: str, at: datetime
) -> None:
    """Take ``amount`` of a locked order's released funds back into held, pro rata: the
    provider's payable and the commission each give back their share. When the earnings were
    transferred, the provider's share is taken back from the connected account too."""
    originals = _release_postings(order)
    if not originals:
        return
    ledger_reverse_in_order(
        transactions=originals,
        amount=amount,
        idempotency_key=key,
        source=source,
        memo=memo,
        posted_at=at,
    )
    provider_share = sum(
        Entry.objects.filter(
            Q(transaction__idempotency_key=key)
            | Q(transaction__idempotency_key__startswith=f"{key}:"),
            transaction__source=source,
            account=_payable(order),
        ).values_list("amount", flat=True)
    )
    if provider_share > 0 and order.transferred_amount:
        _transfer_reverse(order, min(provider_share, order.transferred_amount), ref, at)


def _refund_book(order: Order, *, new_total: int, at: datetime, source: str) -> int:
    """Book refunds (or a lost dispute) up to ``new_total`` of a locked order; returns the
    amount booked now (0 when ``new_total`` is already booked)."""
    new_total = min(new_total, order.price - order.disputed_amount)
    delta = new_total - order.refunded_amount
    if delta <= 0 or order.paid_at is None:
        return 0
    held = system_account(SystemAccount.LIABILITY_MARKETPLACE_HELD)
    # After a release the refund comes back from the released split first, into held, which
    # then pays the buyer.
    _clawback(
        order,
        amount=delta,
        key=f"order:{order.pk}:clawback:{new_total}",
        ref=str(new_total),
        source=CLAWBACK_SOURCE,
        memo=f"Order {order.pk}: refund after release",
        at=at,
    )
    ledger_post(
        idempotency_key=f"order:{order.pk}:refund:{new_total}",
        source=source,
        lines=[
            Line.debit(held, delta, order.currency),
            Line.credit(system_account(SystemAccount.STRIPE_CLEARING), delta, order.currency),
        ],
        memo=f"Order {order.pk}: {delta} back to the buyer ({new_total} in all)",
        posted_at=at,
    )
    order.refunded_amount = new_total
    order.save(update_fields=["refunded_amount", "updated_at"])
    return delta


def _transfer_reverse(order: Order, amount: int, ref: str, at: datetime) -> None:
    """Take ``amount`` back from the order's transfer; ``ref`` names what for in the keys (a
    refund's new total, or ``dispute:<id>``)."""
    with stripe_errors():
        stripe.Transfer.create_reversal(
            order.stripe_transfer_id,
            amount=amount,
            metadata={METADATA_KEY: str(order.pk)},
            api_key=stripe_api_key(),
            idempotency_key=f"marketplace-order-{order.pk}-trr-{ref.replace(':', '-')}",
        )
    ledger_post(
        idempotency_key=f"order:{order.pk}:transfer_reversal:{ref}",
        source=TRANSFER_REVERSAL_SOURCE,
        lines=[
            Line.debit(system_account(SystemAccount.STRIPE_CLEARING), amount, order.currency),
            Line.credit(_payable(order), amount, order.currency),
        ],
        memo=f"Order {order.pk}: {amount} taken back from transfer {order.stripe_transfer_id}",
        posted_at=at,
    )
    order.transferred_amount -= amount
    order.save(update_fields=["transferred_amount", "updated_at"])


@transaction.atomic
def order_refund(
    *, order: Order, user: User | None, amount: int | None = None, note: str = ""
) -> Order:
    """Staff refund the buyer: in full (``amount`` None or all that is left; → ``refunded``),
    or in part — on a disputed order the rest is then released to the provider
    (``partial_refund``), on a released one the order stays released. After a release the
    provider's share comes back from their payable and, when transferred, from their
    connected account. Raises OrderTransitionError, ValidationError (``amount``), the
    ``stripe_errors`` kinds."""
    order = _locked(order)
    left = order_left(order)
    full = amount is None or amount == left
    if full:
        _check(order, "refund", Actor.STAFF)
        now = timezone.now()
        if left:
            _refund(order, amount=left, user=user, at=now)
        order.closed_at = now
        _move(order, "refund", actor=Actor.STAFF, user=user, note=note, amount=left, at=now)
        return order
    _check(order, "partial_refund", Actor.STAFF)
    if order.state == State.DISPUTED:
        return order_release(
            order=order,
            user=user,
            transition="partial_refund",
            note=note,
            refund_first=amount,  # type: ignore[arg-type]
        )
    now = timezone.now()
    _refund(order, amount=amount, user=user, at=now)  # type: ignore[arg-type]
    _move(order, "partial_refund", actor=Actor.STAFF, user=user, note=note, amount=amount, at=now)
    return order


def order_resolve_release(*, order: Order, user: User, note: str = "") -> Order:
    """Staff resolve a dispute for the provider: the held funds are released."""
    return order_release(order=order, user=user, transition="resolve_release", note=note)


# --- Stripe events on an order's charge -------------------------------------------------------


def _order_for_charge(charge_id: str, pi_id: str = "") -> Order | None:
    query = Order.objects.select_for_update()
    order = query.filter(stripe_charge_id=charge_id).first() if charge_id else None
    if order is None and pi_id:
        order = query.filter(stripe_payment_intent_id=pi_id).first()
    return order


@transaction.atomic
def order_charge_refunded(*, charge: Mapping[str, Any], occurred_at: datetime) -> Order | None:
    """``charge.refunded`` on an order's charge: book refunds made outside our console (the
    Stripe dashboard) up to the charge's ``amount_refunded``; ours are booked already, so this
    books nothing for them. A refund of the whole price closes the order (``refunded``)."""
    order = _order_for_charge(stripe_id(charge.get("id")), stripe_id(charge.get("payment_intent")))
    if order is None:
        return None
    _refund_book(
        order,
        new_total=int(charge.get("amount_refunded") or 0),
        at=occurred_at,
        source=REFUND_SOURCE,
    )
    _close_if_refunded(order, note="Refunded in full on Stripe")
    return order


def _close_if_refunded(order: Order, *, note: str) -> None:
    if (
        order.paid_at
        and order_left(order) <= 0
        and transition_allowed(order=order, transition="refund", actor=Actor.SYSTEM)
    ):
        order.closed_at = timezone.now()
        _move(order, "refund", actor=Actor.SYSTEM, user=None, note=note)


def _dispute_key(order: Order, dispute_id: str) -> str:
    return f"order:{order.pk}:dispute:{dispute_id}"


def _dispute_order(dispute: Mapping[str, Any], occurred_at: datetime) -> Order | None:
    """The locked order whose charge ``dispute`` is on, its payment booked (from Stripe when
    the dispute's event comes before ``payment_intent.succeeded``), with the dispute's id and
    status recorded; a decided dispute's status is never set back by an older event."""
    pi_id = stripe_id(dispute.get("payment_intent"))
    order = _order_for_charge(stripe_id(dispute.get("charge")), pi_id)
    if order is None:
        return None
    if order.paid_at is None and order.stripe_payment_intent_id:
        with stripe_errors():
            intent = stripe.PaymentIntent.retrieve(
                order.stripe_payment_intent_id, api_key=stripe_api_key(dispute.get("livemode"))
            ).to_dict()
        if intent.get("status") == "succeeded":
            _payment_succeeded(order, intent, at=stripe_time(intent.get("created")) or occurred_at)
    dispute_id = stripe_id(dispute.get("id"))
    status = str(dispute.get("status") or "")
    decided = order.stripe_dispute_status in DISPUTE_CLOSED_STATUSES
    if order.stripe_dispute_id != dispute_id or not decided or status in DISPUTE_CLOSED_STATUSES:
        order.stripe_dispute_id = dispute_id
        order.stripe_dispute_status = status
        order.save(update_fields=["stripe_dispute_id", "stripe_dispute_status", "updated_at"])
    return order


def _dispute_withdraw(order: Order, dispute: Mapping[str, Any], occurred_at: datetime) -> None:
    """Book the funds Stripe took for ``dispute`` from a locked order, once per dispute, and
    hold the order ``disputed`` (a note when its state does not allow it). A dispute booked
    back already (won) is not booked again."""
    dispute_id = stripe_id(dispute.get("id"))
    key = _dispute_key(order, dispute_id)
    if (
        order.paid_at is None
        or Transaction.objects.filter(
            Q(source=DISPUTE_SOURCE, idempotency_key=key)
            | Q(
                source=DISPUTE_WON_SOURCE,
                idempotency_key=f"order:{order.pk}:dispute_won:{dispute_id}",
            )
        ).exists()
    ):
        return
    amount = min(int(dispute.get("amount") or 0), order_left(order))
    if amount <= 0:
        return
    memo = f"Order {order.pk}: Stripe dispute {dispute_id} took {amount}"
    _clawback(
        order,
        amount=amount,
        key=f"{key}:clawback",
        ref=f"dispute:{dispute_id}",
        source=DISPUTE_SOURCE,
        memo=memo,
        at=occurred_at,
    )
    ledger_post(
        idempotency_key=key,
        source=DISPUTE_SOURCE,
        lines=[
            Line.debit(
                system_account(SystemAccount.LIABILITY_MARKETPLACE_HELD), amount, order.currency
            ),
            Line.credit(system_account(SystemAccount.STRIPE_CLEARING), amount, order.currency),
        ],
        memo=memo,
        posted_at=occurred_at,
    )
    order.disputed_amount += amount
    order.save(update_fields=["disputed_amount", "updated_at"])
    note = f"Stripe dispute {dispute_id} ({dispute.get('reason') or 'no reason'})"
    if transition_allowed(order=order, transition="stripe_dispute", actor=Actor.SYSTEM):
        _move(
            order,
            "stripe_dispute",
            actor=Actor.SYSTEM,
            user=None,
            note=note,
            amount=amount,
            at=occurred_at,
        )
    else:
        _note(order, "stripe_dispute_opened", note=note, amount=amount)


@transaction.atomic
def order_stripe_dispute_opened(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> Order | None:
    """``charge.dispute.created`` / ``.funds_withdrawn`` on an order's charge: Stripe took the
    disputed funds, so they are booked now (see the module docstring): held funds go back to
    Stripe, a released order's split is reversed (the provider's share from their connected
    account when transferred), and an order not released yet becomes ``disputed``; no money
    moves on it until the dispute is decided. Inquiries (no funds withdrawn) change nothing
    until they escalate. Idempotent per dispute."""
    if dispute_is_inquiry(dispute):
        return None
    order = _dispute_order(dispute, occurred_at)
    if order is not None:
        _dispute_withdraw(order, dispute, occurred_at)
    return order


def _book_back(order: Order, *, rows_of: Q, key: str, memo: str, at: datetime) -> None:
    """Post the negation of the dispute postings ``rows_of`` selects, per account."""
    totals = (
        Entry.objects.filter(rows_of, transaction__source=DISPUTE_SOURCE)
        .values("account_id", "currency")
        .annotate(total=Sum("amount"))
        .order_by("account_id")
    )
    rows = [row for row in totals if row["total"]]
    if not rows:
        return
    accounts = Account.objects.in_bulk([row["account_id"] for row in rows])
    ledger_post(
        idempotency_key=key,
        source=DISPUTE_WON_SOURCE,
        lines=[Line(accounts[row["account_id"]], -row["total"], row["currency"]) for row in rows],
        memo=memo,
        posted_at=at,
    )


@transaction.atomic
def order_stripe_dispute_won(*, dispute: Mapping[str, Any], occurred_at: datetime) -> Order | None:
    """The merchant won a dispute on an order's charge (``charge.dispute.funds_reinstated``, or
    ``charge.dispute.closed`` with ``won``, whichever comes first): its postings are booked
    back with their lines negated (the release's part keyed ``…:release``, so a later refund
    reverses it like the release), and an order the dispute made ``disputed`` goes back to the
    state it had before. The provider's share taken back from their connected account is in
    their payable again, for the payout engine. When the opening was not processed yet it is
    booked first, so the result is the same in any order. Idempotent per dispute."""
    order = _dispute_order(dispute, occurred_at)
    if order is None:
        return None
    dispute_id = stripe_id(dispute.get("id"))
    key = _dispute_key(order, dispute_id)
    won_key = f"order:{order.pk}:dispute_won:{dispute_id}"
    if Transaction.objects.filter(source=DISPUTE_WON_SOURCE, idempotency_key=won_key).exists():
        return order
    opened_at = stripe_time(dispute.get("created")) or occurred_at
    _dispute_withdraw(order, dispute, opened_at)
    withdrawal = Transaction.objects.filter(source=DISPUTE_SOURCE, idempotency_key=key).first()
    if withdrawal is None:
        return order  # nothing was taken (an unpaid order, or nothing left to dispute)
    memo = f"Order {order.pk}: Stripe dispute {dispute_id} won"
    _book_back(
        order,
        rows_of=Q(transaction__idempotency_key__startswith=f"{key}:clawback"),
        key=f"{won_key}:release",
        memo=memo,
        at=occurred_at,
    )
    _book_back(order, rows_of=Q(transaction=withdrawal), key=won_key, memo=memo, at=occurred_at)
    amount = -sum(withdrawal.entries.filter(amount__lt=0).values_list("amount", flat=True))
    order.disputed_amount -= amount
    order.save(update_fields=["disputed_amount", "updated_at"])
    opened = order.events.filter(transition="stripe_dispute").order_by("-at", "-pk").first()
    if order.state == State.DISPUTED and opened is not None:
        _move(
            order,
            "stripe_dispute_won",
            actor=Actor.SYSTEM,
            user=None,
            note=memo,
            amount=amount,
            at=occurred_at,
            target=opened.from_state,
        )
    else:
        _note(order, "stripe_dispute_won", note=memo, amount=amount)
    return order


@transaction.atomic
def order_stripe_dispute_closed(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> Order | None:
    """``charge.dispute.closed``: ``won`` as ``order_stripe_dispute_won``; ``lost`` leaves the
    reversals made when it opened (booked now if that event was not processed yet: one per
    dispute, never two) and closes an order that lost all it held (``refunded``). Stripe's
    dispute fee is booked by ``subscriptions.services.stripe_fees``, for every charge."""
    status = str(dispute.get("status") or "")
    if status == "won":
        return order_stripe_dispute_won(dispute=dispute, occurred_at=occurred_at)
    if status != "lost":
        return None
    order = _dispute_order(dispute, occurred_at)
    if order is None:
        return None
    opened_at = stripe_time(dispute.get("created")) or occurred_at
    _dispute_withdraw(order, dispute, opened_at)
    note = f"Stripe dispute {order.stripe_dispute_id} lost"
    if not order.events.filter(transition="stripe_dispute_lost").exists():
        _note(order, "stripe_dispute_lost", note=note, amount=order.disputed_amount)
    _close_if_refunded(order, note=note)
    return order


# --- the timer -----------------------------------------------------------------------------


@dataclass
class AutoAcceptResult:
    accepted: int = 0
    released: int = 0
    transferred: int = 0
    failed: int = 0


def orders_auto_accept_due(*, now: datetime | None = None) -> AutoAcceptResult:
    """Accept every order delivered more than ``MARKETPLACE_AUTO_ACCEPT_DAYS`` ago (as the
    system) and release every accepted order, each in its own transaction; an order another
    request moved meanwhile is skipped. Stripe being unavailable leaves an order accepted for
    the next run."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.MARKETPLACE_AUTO_ACCEPT_DAYS)
    result = AutoAcceptResult()
    due = Order.objects.filter(state=State.DELIVERED, delivered_at__lte=cutoff).order_by("pk")
    for pk in list(due.values_list("pk", flat=True)):
        try:
            _accept(Order(pk=pk), actor=Actor.SYSTEM, user=None, note="Accepted automatically")
        except OrderTransitionError:
            continue
        result.accepted += 1
    accepted = Order.objects.filter(state=State.ACCEPTED).order_by("pk")
    for pk in list(accepted.values_list("pk", flat=True)):
        try:
            order_release(order=Order(pk=pk))
        except OrderTransitionError:
            continue
        except StripeUnavailable:
            result.failed += 1
            continue
        result.released += 1
    pending = Order.objects.filter(state=State.RELEASED, transfer_pending=True).order_by("pk")
    for pk in list(pending.values_list("pk", flat=True)):
        order = order_transfer_retry(order=Order(pk=pk))
        if order.transfer_pending:
            result.failed += 1
        else:
            result.transferred += 1
    return result


# --- messages ------------------------------------------------------------------------------


def order_message_create(*, order: Order, user: User, body: str) -> OrderMessage:
    """A message from the buyer or the provider on ``order``."""
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": ["A message cannot be empty."]})
    return OrderMessage.objects.create(order=order, author=user, body=body[:10000])


def provider_earnings_rows(*, provider_id: int) -> list[dict[str, Any]]:
    """The provider's ledger lines (earnings, transfers, clawbacks, payouts), oldest first,
    with a running balance: the earnings statement."""
    entries = (
        Entry.objects.filter(account__payee_type=PAYEE_TYPE, account__payee_id=provider_id)
        .select_related("transaction")
        .order_by("posted_at", "pk")
    )
    rows: list[dict[str, Any]] = []
    balance: dict[str, int] = {}
    for entry in entries:
        # A payable is a liability: a credit (negative) is money owed to the provider.
        amount = -entry.amount
        balance[entry.currency] = balance.get(entry.currency, 0) + amount
        rows.append(
            {
                "posted_at": entry.posted_at,
                "source": entry.transaction.source,
                "reference": entry.transaction.idempotency_key,
                "memo": entry.transaction.memo,
                "amount": amount,
                "currency": entry.currency,
                "balance": balance[entry.currency],
            }
        )
    return rows
