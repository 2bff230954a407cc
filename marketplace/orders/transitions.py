"""The order services: placing an order and taking its transitions (``machine``), each
in one transaction on the locked order row, moving its money (``money``); the auto-accept
timer; messages on an order."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from ledger.chart import SystemAccount
from ledger.models import Entry
from ledger.services import (
    Line,
    ledger_post,
    system_account,
)
from marketplace.models import Listing, ListingPackage, Order, OrderEvent, OrderMessage
from marketplace.orders.machine import (
    Actor,
    OrderTransitionError,
    State,
    _actor,
    _check,
    _locked,
    _move,
    _note,
)
from marketplace.orders.money import (
    METADATA_KEY,
    RELEASE_SOURCE,
    _paid,
    _payable,
    _payment_succeeded,
    _refund,
    _transfer,
    order_left,
    order_split,
    transfer_group,
)
from revenue_site.stripe_errors import StripeUnavailable, stripe_errors
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)


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


def _take(
    order: Order,
    transition: str,
    *,
    user: User,
    note: str,
    prepare: Callable[[Order], None] | None = None,
) -> Order:
    """The buyer's or provider's ``transition`` on the locked order: checked, then
    ``prepare`` (which may refuse with OrderTransitionError or set fields), then taken."""
    order = _locked(order)
    actor = _actor(order, user)
    _check(order, transition, actor)
    if prepare is not None:
        prepare(order)
    _move(order, transition, actor=actor, user=user, note=note)
    return order


@transaction.atomic
def order_start(*, order: Order, user: User, note: str = "") -> Order:
    """The provider starts work on a paid order. Raises OrderTransitionError."""
    return _take(order, "start", user=user, note=note)


def _delivered_now(order: Order) -> None:
    order.delivered_at = timezone.now()


@transaction.atomic
def order_deliver(*, order: Order, user: User, note: str = "") -> Order:
    """The provider delivers (first time or after a revision request); the auto-accept timer
    counts from now. Raises OrderTransitionError."""
    return _take(order, "deliver", user=user, note=note, prepare=_delivered_now)


def _revision_used(order: Order) -> None:
    if order.revisions_used >= order.revisions_allowed:
        raise OrderTransitionError(
            f"No revisions left ({order.revisions_allowed} included).", state=order.state
        )
    order.revisions_used += 1


@transaction.atomic
def order_request_revision(*, order: Order, user: User, note: str = "") -> Order:
    """The buyer asks for a revision of a delivery, up to the package's revisions. Raises
    OrderTransitionError (also when none are left)."""
    return _take(order, "request_revision", user=user, note=note, prepare=_revision_used)


@transaction.atomic
def order_dispute(*, order: Order, user: User, note: str = "") -> Order:
    """The buyer disputes a delivery: the funds stay held until staff resolve it."""
    return _take(order, "dispute", user=user, note=note)


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


def order_message_create(*, order: Order, user: User, body: str) -> OrderMessage:
    """A message from the buyer or the provider on ``order``."""
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": ["A message cannot be empty."]})
    return OrderMessage.objects.create(order=order, author=user, body=body[:10000])
