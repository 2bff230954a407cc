"""The money of an order: its ledger postings and the Stripe calls that move it.

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
from datetime import datetime
from decimal import Decimal
from typing import Any

import stripe
from django.core.exceptions import ValidationError
from django.db.models import Q

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
from marketplace.models import Order
from marketplace.orders.machine import (
    TRANSITIONS,
    Actor,
    _move,
    _note,
)
from revenue_site.money import split_with_platform_remainder
from revenue_site.stripe_errors import BillingError, StripeUnavailable, stripe_errors
from revenue_site.stripe_payloads import stripe_id
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)

PAYEE_TYPE = Account.PayeeType.PROVIDER.value
METADATA_KEY = "marketplace_order"
HUNDRED = Decimal(100)

# The ledger sources of an order's postings (each keyed ``order:<pk>:…``).
PAID_SOURCE = "marketplace.order_paid"
RELEASE_SOURCE = "marketplace.order_release"
TRANSFER_SOURCE = "marketplace.order_transfer"
REFUND_SOURCE = "marketplace.order_refund"
CLAWBACK_SOURCE = "marketplace.order_clawback"
TRANSFER_REVERSAL_SOURCE = "marketplace.order_transfer_reversal"
DISPUTE_SOURCE = "marketplace.order_dispute"
DISPUTE_WON_SOURCE = "marketplace.order_dispute_won"


def order_left(order: Order) -> int:
    """What the order still holds for the provider or the buyer: the price less refunds and
    less what Stripe took for a dispute."""
    return order.price - order.refunded_amount - order.disputed_amount


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


def _metadata_pk(obj: Mapping[str, Any]) -> int | None:
    metadata = obj.get("metadata")
    value = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


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
