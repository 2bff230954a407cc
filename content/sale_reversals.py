"""Refunds and disputes of licence payments: new ledger entries reverse the sale and claw
back the commission; the licence is revoked, suspended or reinstated.

- ``license_charge_refunded`` (``charge.refunded``): the refunded share of the sale is
  reversed; a full refund revokes the licence.
- ``license_dispute_opened`` (``charge.dispute.created`` / ``.funds_withdrawn``): Stripe takes
  the disputed funds at once: the licence is SUSPENDED and the disputed share reversed.
- ``license_dispute_won`` (``charge.dispute.funds_reinstated``, or ``charge.dispute.closed``
  with ``won``): the reversal is booked back and the licence reinstated;
  ``license_dispute_closed`` with ``lost`` revokes it (the reversal made when it opened
  stands: one per dispute, never two).

Reversals go through new ledger entries, never edits: a refund or dispute reverses its share of
the sale posting (``ledger_reverse``: pro rata over tax, revenue and each co-creator, largest
remainder, so the parts add up exactly) and claws back the same share of the commission
(``affiliates.services.clawbacks``: Dr the affiliate's payable / Cr ``revenue.content``), so a
full refund or a lost dispute brings every balance back to zero. A dispute the merchant wins is
booked back by a posting with the dispute reversal's lines negated (and the commission's
clawback likewise). Events are idempotent per Stripe id; an event whose payment was not booked
yet (delivered before ``payment_intent.succeeded``) books it first from Stripe, so the order
of delivery does not change the result.

The sale itself, its split and the accounting: ``content.purchases``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import stripe
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone
from djstripe import models as djm

from affiliates.services import clawbacks
from content.models import License
from content.purchases import (
    DISPUTE_SOURCE,
    DISPUTE_WON_SOURCE,
    REFUND_SOURCE,
    dispute_key,
    dispute_won_key,
    license_payment_succeeded,
    sale_posting,
)
from ledger.models import Account, Entry, Transaction
from ledger.services import Line, ledger_post, ledger_reverse_in_order
from revenue_site.stripe_errors import stripe_errors
from revenue_site.stripe_payloads import dispute_is_inquiry, stripe_id, stripe_time
from revenue_site.stripe_setup import stripe_api_key


def _sale_ensure(pi_id: str, *, livemode: Any) -> Transaction | None:
    """The sale posting of a licence payment, booked now from Stripe when a refund or dispute
    event arrives before ``payment_intent.succeeded`` was processed."""
    sale = sale_posting(pi_id)
    if sale is not None:
        return sale
    with stripe_errors():
        intent = stripe.PaymentIntent.retrieve(pi_id, api_key=stripe_api_key(livemode)).to_dict()
    if intent.get("status") != "succeeded":
        return None
    occurred_at = stripe_time(intent.get("created")) or timezone.now()
    return license_payment_succeeded(payment_intent=intent, occurred_at=occurred_at)


def _licence_of(pi_id: str) -> License | None:
    return License.objects.select_for_update().filter(stripe_payment_intent_id=pi_id).first()


def _set_status(license: License | None, status: str, *, suspended_by: str = "") -> None:
    if license is not None and license.status != status:
        license.status = status
        license.suspended_by = suspended_by if status == License.Status.SUSPENDED else ""
        license.save(update_fields=["status", "suspended_by"])


def _reinstatements(sale: Transaction) -> list[Transaction]:
    """Postings that booked back disputes on ``sale`` which the merchant won, oldest first."""
    keys = [
        dispute_won_key(key.removeprefix(dispute_key("")))
        for key in sale.reversals.filter(source=DISPUTE_SOURCE).values_list(
            "idempotency_key", flat=True
        )
    ]
    if not keys:
        return []
    return list(
        Transaction.objects.filter(source=DISPUTE_WON_SOURCE, idempotency_key__in=keys).order_by(
            "pk"
        )
    )


def _reversed_by(source: str, originals: list[Transaction]) -> int:
    """How much of ``originals``' clearing debits reversals from ``source`` took back."""
    total = Entry.objects.filter(
        transaction__source=source, transaction__reversal_of__in=originals, amount__lt=0
    ).aggregate(total=Sum("amount"))["total"]
    return -int(total or 0)


def _left(originals: list[Transaction]) -> int:
    """What is left of ``originals``' debit side after every reversal of them."""
    rows = (
        Entry.objects.filter(
            Q(transaction__in=originals) | Q(transaction__reversal_of__in=originals)
        )
        .values("account_id")
        .annotate(left=Sum("amount"))
        .order_by()
    )
    return sum(row["left"] for row in rows if row["left"] > 0)


@transaction.atomic
def license_charge_refunded(
    *, charge: Mapping[str, Any], occurred_at: datetime
) -> Transaction | None:
    """A refund on a licence's charge: reverse the refunded share of the sale posting (pro
    rata over tax, revenue and creators; key = the charge and its refunded total, so a
    redelivered event changes nothing), claw back the same share of the affiliate's
    commission (once per refund id) and, when refunded in full, revoke the licence."""
    pi_id = stripe_id(charge.get("payment_intent"))
    refunded = int(charge.get("amount_refunded") or 0)
    if not pi_id or refunded <= 0:
        return None
    if not License.objects.filter(stripe_payment_intent_id=pi_id).exists():
        return None
    sale = _sale_ensure(pi_id, livemode=charge.get("livemode"))
    charged = int(charge.get("amount") or refunded)
    if charge.get("refunded") or refunded >= charged:
        _set_status(_licence_of(pi_id), License.Status.REVOKED)
    if sale is None:
        return None
    key = f"stripe:content.refund:{stripe_id(charge.get('id'))}:{refunded}"
    reversal = Transaction.objects.filter(source=REFUND_SOURCE, idempotency_key=key).first()
    if reversal is None:
        originals = [sale, *_reinstatements(sale)]
        part = min(
            min(refunded, charged) - _reversed_by(REFUND_SOURCE, originals), _left(originals)
        )
        if part > 0:
            reversal, _rest = ledger_reverse_in_order(
                transactions=originals,
                amount=part,
                idempotency_key=key,
                source=REFUND_SOURCE,
                memo=f"Refund on licence payment {pi_id}",
                posted_at=occurred_at,
            )
    clawbacks.commission_refunds_record(charge=charge, occurred_at=occurred_at)
    return reversal


def _dispute_payment_intent(dispute: Mapping[str, Any]) -> str:
    pi_id = stripe_id(dispute.get("payment_intent"))
    if pi_id:
        return pi_id
    charge_id = stripe_id(dispute.get("charge"))
    data = djm.Charge.objects.filter(id=charge_id).values_list("stripe_data", flat=True).first()
    if data is None:
        with stripe_errors():
            data = stripe.Charge.retrieve(
                charge_id, api_key=stripe_api_key(dispute.get("livemode"))
            ).to_dict()
    return stripe_id(data.get("payment_intent"))


@transaction.atomic
def license_dispute_opened(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> Transaction | None:
    """Stripe withdrew a licence payment's disputed funds: suspend the licence, reverse the
    disputed share of the sale (key ``stripe:content.dispute:<dispute id>``, never more than is
    left after refunds) and claw back the commission's share. Inquiries (no funds withdrawn)
    change nothing until they escalate (``charge.dispute.funds_withdrawn``). Idempotent."""
    if dispute_is_inquiry(dispute):
        return None
    pi_id = _dispute_payment_intent(dispute)
    if not pi_id or not License.objects.filter(stripe_payment_intent_id=pi_id).exists():
        return None
    sale = _sale_ensure(pi_id, livemode=dispute.get("livemode"))
    license = _licence_of(pi_id)
    if license is not None and license.status == License.Status.ACTIVE:
        _set_status(license, License.Status.SUSPENDED, suspended_by=License.SuspendedBy.DISPUTE)
    reversal = None
    if sale is not None:
        key = dispute_key(str(dispute["id"]))
        reversal = Transaction.objects.filter(source=DISPUTE_SOURCE, idempotency_key=key).first()
        if reversal is None:
            originals = [sale, *_reinstatements(sale)]
            part = min(int(dispute.get("amount") or 0), _left(originals))
            if part > 0:
                reversal, _rest = ledger_reverse_in_order(
                    transactions=originals,
                    amount=part,
                    idempotency_key=key,
                    source=DISPUTE_SOURCE,
                    memo=f"Dispute {dispute['id']} on licence payment {pi_id}",
                    posted_at=occurred_at,
                )
    clawbacks.commission_dispute_record(dispute=dispute, occurred_at=occurred_at)
    return reversal


@transaction.atomic
def license_dispute_won(*, dispute: Mapping[str, Any], occurred_at: datetime) -> Transaction | None:
    """The merchant won a licence payment's dispute (``charge.dispute.funds_reinstated``, or
    ``charge.dispute.closed`` with ``won``, whichever comes first): book the dispute's
    reversal back (its lines negated, key ``stripe:content.dispute.won:<dispute id>``), give
    the commission back (``commission_dispute_won_record``) and reinstate the licence if the
    dispute suspended it (EXPIRED if its term ended meanwhile; a staff suspension stands). When
    the opening was not processed yet it is booked first, so the result is the same in any
    order. Returns the posting, if any."""
    opened_at = stripe_time(dispute.get("created")) or occurred_at
    license_dispute_opened(dispute=dispute, occurred_at=opened_at)
    clawbacks.commission_dispute_won_record(dispute=dispute, occurred_at=occurred_at)
    pi_id = _dispute_payment_intent(dispute)
    license = _licence_of(pi_id) if pi_id else None
    if license is None:
        return None
    # Only the dispute's own suspension is lifted: one staff made stands.
    if license.status == License.Status.SUSPENDED and (
        license.suspended_by == License.SuspendedBy.DISPUTE
    ):
        expired = license.expires_at is not None and license.expires_at <= timezone.now()
        _set_status(license, License.Status.EXPIRED if expired else License.Status.ACTIVE)
    dispute_id = str(dispute["id"])
    won = Transaction.objects.filter(
        source=DISPUTE_WON_SOURCE, idempotency_key=dispute_won_key(dispute_id)
    ).first()
    if won is not None:
        return won
    key = dispute_key(dispute_id)
    totals = (
        Entry.objects.filter(
            Q(transaction__idempotency_key=key)
            | Q(transaction__idempotency_key__startswith=f"{key}:"),
            transaction__source=DISPUTE_SOURCE,
        )
        .values("account_id", "currency")
        .annotate(total=Sum("amount"))
        .order_by("account_id")
    )
    rows = [row for row in totals if row["total"]]
    if not rows:
        return None
    accounts = Account.objects.in_bulk([row["account_id"] for row in rows])
    return ledger_post(
        idempotency_key=dispute_won_key(dispute_id),
        source=DISPUTE_WON_SOURCE,
        lines=[Line(accounts[row["account_id"]], -row["total"], row["currency"]) for row in rows],
        memo=f"Dispute {dispute_id} won on licence payment {pi_id}",
        posted_at=occurred_at,
    )


@transaction.atomic
def license_dispute_closed(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> Transaction | None:
    """A licence payment's dispute closed: ``won`` as ``license_dispute_won``; ``lost`` revokes
    the licence, the reversal booked when it opened standing (booked now if that event was
    not processed yet: one reversal per dispute, never two). Other statuses change nothing."""
    status = dispute.get("status")
    if status == "won":
        return license_dispute_won(dispute=dispute, occurred_at=occurred_at)
    if status != "lost":
        return None
    opened_at = stripe_time(dispute.get("created")) or occurred_at
    reversal = license_dispute_opened(dispute=dispute, occurred_at=opened_at)
    pi_id = _dispute_payment_intent(dispute)
    if pi_id:
        _set_status(_licence_of(pi_id), License.Status.REVOKED)
    return reversal
