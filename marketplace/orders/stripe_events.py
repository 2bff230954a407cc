"""Stripe's events on an order's charge (the dj-stripe receivers in
``marketplace.receivers_orders`` call these): the payment completed, refunds made on Stripe,
disputes opened, won and lost (see ``money`` for what each books)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import stripe
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from ledger.chart import SystemAccount
from ledger.models import Account, Entry, Transaction
from ledger.services import (
    Line,
    ledger_post,
    system_account,
)
from marketplace.models import Order
from marketplace.orders.machine import (
    DISPUTE_CLOSED_STATUSES,
    Actor,
    State,
    _move,
    _note,
    transition_allowed,
)
from marketplace.orders.money import (
    DISPUTE_SOURCE,
    DISPUTE_WON_SOURCE,
    REFUND_SOURCE,
    _clawback,
    _metadata_pk,
    _payment_succeeded,
    _refund_book,
    _refund_orphan,
    order_left,
)
from revenue_site.stripe_errors import stripe_errors
from revenue_site.stripe_payloads import dispute_is_inquiry, stripe_id, stripe_time
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)


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
