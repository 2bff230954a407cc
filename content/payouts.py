"""Creators in the shared payout engine (``ledger.payouts``): the hold period, the minimum, the
remittance notice, and how a creator tells us where to be paid.

A creator's payable (``payable.creator.<id>``) is credited by their share of each sale
(``content.purchases``) and of usage royalties, and debited by refunds, lost disputes and
payouts. The engine pays the payable's balance less what ``creator_withheld`` says is not
payable yet:

- **hold**: earnings (any posting that credits the payable and is not itself a reversal) booked
  less than ``CONTENT_PAYOUT_HOLD_DAYS`` before the end of the batch's day are withheld, net of
  whatever has reversed them since, at any time. A refund inside the window therefore only
  shrinks held money and is clawed back before it could be paid; a refund of money that is
  already payable (or paid) counts at once;
- **later postings**: earnings booked after the batch's day are inside the window by
  definition, so a batch for an earlier day never pays them;
- **minimum**: ``CONTENT_PAYOUT_MINIMUM`` minor units per currency;
- **negative balances** (a refund after the money was paid out) are not paid and carry
  forward: the engine pays balances, so the next earnings net them first.

Batches are created, approved and executed by the engine: monthly by the beat task
``content.tasks.creator_payouts_run``, by staff with ``manage.py run_payouts --payee-type
creator`` and the payout batch actions in the staff console.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum

from accounts.models import User
from accounts.services import email_queue
from content.models import Creator
from content.services import PAYEE_TYPE, creator_create
from ledger.chart import payee_account_code
from ledger.models import Entry, PayeeProfile, Payout
from ledger.payee_profiles import payee_profile_set
from ledger.payouts import PAYOUT_SOURCE
from ledger.selectors import payee_balance
from revenue_site.money import format_money

PAYOUT_SETTINGS_FIELDS = (
    "method",
    "stripe_account_id",
    "paypal_email",
    "bank_account_name",
    "bank_iban",
    "bank_bic",
)


def creator_hold_days() -> int:
    return int(settings.CONTENT_PAYOUT_HOLD_DAYS)


def creator_minimum(payee_id: int) -> int:
    """The payout engine's minimum for a creator (minor units of the balance's currency)."""
    return int(settings.CONTENT_PAYOUT_MINIMUM)


# --- payout engine hooks -----------------------------------------------------------------


def creator_withheld(*, payee_ids: list[int], as_of: datetime) -> dict[tuple[int, str], int]:
    """Money in creators' payables that is not payable at ``as_of``, per (creator id, currency):
    earnings booked after ``as_of - hold`` net of their reversals (see the module docstring).

    One query: the credits of non-reversal postings in the window, plus the debits of the
    reversals of those postings (whenever the reversal was booked). Payouts are neither.
    """
    if not payee_ids:
        return {}
    since = as_of - timedelta(days=creator_hold_days())
    codes = [payee_account_code(PAYEE_TYPE, payee_id) for payee_id in payee_ids]
    rows = (
        Entry.objects.filter(account__code__in=codes)
        .exclude(transaction__source=PAYOUT_SOURCE)
        .filter(
            Q(transaction__reversal_of__isnull=True, amount__lt=0, posted_at__gt=since)
            | Q(amount__gt=0, transaction__reversal_of__posted_at__gt=since)
        )
        .values("account__payee_id", "currency")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    # Credits are negative; a reversal never takes back more than its original, so the net is
    # a credit (or zero). ``max`` guards against hand-made postings that would break that.
    return {
        (int(row["account__payee_id"] or 0), row["currency"]): max(0, -int(row["total"]))
        for row in rows
        if row["total"]
    }


def creator_payout_paid(*, payout: Payout, as_of: datetime) -> None:
    """E-mail the creator a remittance notice when a payout is PAID (queued after commit: a
    mail server that is down never fails the payout)."""
    creator = Creator.objects.select_related("user").get(pk=payout.payee_id)
    amount = format_money(payout.amount, payout.currency, with_code=True)
    email_queue(
        to=[creator.user.email],
        purpose="content.creator_payout_paid",
        subject=f"Your creator payout of {amount}",
        body=(
            f"Hello {creator.display_name},\n\nwe have sent you {amount} "
            f"({payout.get_method_display()}): your earnings up to "
            f"{as_of.date().isoformat()}, less the last {creator_hold_days()} days, which are "
            f"held for refunds and paid with the next payout. Payout reference: {payout.pk}."
        ),
    )


# --- balance (what the creator sees) -----------------------------------------------------


def creator_balance(*, creator: Creator, as_of: datetime) -> list[dict[str, Any]]:
    """Per currency: the payable balance now, what is held (not payable at ``as_of``), what a
    batch would pay (``available``: 0 when below the minimum or negative), and the minimum."""
    balances = payee_balance(payee_type=PAYEE_TYPE, payee_id=creator.pk)
    held = creator_withheld(payee_ids=[creator.pk], as_of=as_of)
    minimum = creator_minimum(creator.pk)
    rows = []
    for currency in sorted(set(balances) | {c for (_, c) in held}):
        balance = balances.get(currency, 0)
        on_hold = held.get((creator.pk, currency), 0)
        payable = balance - on_hold
        rows.append(
            {
                "currency": currency,
                "balance": balance,
                "held": on_hold,
                "available": payable if payable >= minimum and payable > 0 else 0,
                "minimum": minimum,
            }
        )
    return rows


# --- where to be paid --------------------------------------------------------------------


def creator_payee_profile(*, creator: Creator) -> PayeeProfile | None:
    return PayeeProfile.objects.filter(payee_type=PAYEE_TYPE, payee_id=creator.pk).first()


@transaction.atomic
def creator_payout_settings_update(
    *, creator: Creator, method: str, **details: str
) -> PayeeProfile:
    """Set how the creator is paid: ``stripe_connect`` (``stripe_account_id``), ``paypal``
    (``paypal_email``) or ``bank_csv`` (``bank_account_name``, ``bank_iban``, ``bank_bic``).
    Raises ValidationError naming the field; TypeError for an unknown keyword."""
    unknown = set(details) - set(PAYOUT_SETTINGS_FIELDS)
    if unknown:
        raise TypeError(f"unexpected fields: {', '.join(sorted(unknown))}")
    return payee_profile_set(payee_type=PAYEE_TYPE, payee_id=creator.pk, method=method, **details)


@transaction.atomic
def creator_onboard(
    *,
    user: User,
    display_name: str,
    platform_fee_percent: Decimal | None = None,
    payout: Mapping[str, str] | None = None,
) -> Creator:
    """Make ``user`` a creator and, when ``payout`` is given, set how they are paid, in one
    transaction (an invalid payout method creates nothing). Raises ValidationError naming the
    field (``display_name``, ``user`` when already a creator, or a payout field)."""
    creator = creator_create(
        user=user, display_name=display_name, platform_fee_percent=platform_fee_percent
    )
    if payout:
        creator_payout_settings_update(creator=creator, **dict(payout))
    return creator


def payout_profiles_by_creator(*, creator_ids: Iterable[int]) -> dict[int, PayeeProfile]:
    """The payee profiles of these creators, by creator id (one query)."""
    return {
        profile.payee_id: profile
        for profile in PayeeProfile.objects.filter(
            payee_type=PAYEE_TYPE, payee_id__in=list(creator_ids)
        )
    }
