"""Reads from the ledger: balances, the trial balance, entry lists.

Balances are ``dict[currency, int minor units]`` and leave out currencies that net to zero.
``account_balance`` is raw (debit positive); ``payee_balance`` is what we owe (positive).
"as of" includes everything posted at or before that instant (``Entry.posted_at``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import cast

from django.db.models import QuerySet, Sum

from ledger.chart import payee_account_code
from ledger.models import Account, Entry, Transaction


def _entries(*, as_of: datetime.datetime | None) -> QuerySet[Entry]:
    entries = Entry.objects.all()
    if as_of is not None:
        entries = entries.filter(posted_at__lte=as_of)
    return entries


def _by_currency(entries: QuerySet[Entry], *, keep_zero: bool = False) -> dict[str, int]:
    rows = entries.order_by().values("currency").annotate(total=Sum("amount"))
    return {row["currency"]: row["total"] for row in rows if keep_zero or row["total"] != 0}


def account_balance(*, account: Account, as_of: datetime.datetime | None = None) -> dict[str, int]:
    """Raw balance per currency: debits minus credits (negative for a credit balance)."""
    return _by_currency(_entries(as_of=as_of).filter(account=account))


def payee_balance(
    *, payee_type: str, payee_id: int, as_of: datetime.datetime | None = None
) -> dict[str, int]:
    """What we owe the payee per currency (credit balance of their payable, as positive).

    An unknown payee (no account yet) owes and is owed nothing: ``{}``.
    """
    code = payee_account_code(payee_type, payee_id)
    rows = _by_currency(_entries(as_of=as_of).filter(account__code=code))
    return {currency: -total for currency, total in rows.items()}


@dataclass(frozen=True, slots=True)
class PayeeBalance:
    account_id: int
    payee_type: str
    payee_id: int
    currency: str
    amount: int  # owed to the payee, minor units; negative when the payee owes us (clawbacks)


def payee_balance_list(
    *,
    payee_type: str | None = None,
    currency: str | None = None,
    as_of: datetime.datetime | None = None,
) -> list[PayeeBalance]:
    """Non-zero balances of every payee account (for payout batches), one query."""
    entries = _entries(as_of=as_of).filter(account__payee_id__isnull=False)
    if payee_type is not None:
        entries = entries.filter(account__payee_type=payee_type)
    if currency is not None:
        entries = entries.filter(currency=currency)
    rows = (
        entries.order_by()
        .values("account_id", "account__payee_type", "account__payee_id", "currency")
        .annotate(total=Sum("amount"))
        .order_by("account_id", "currency")
    )
    return [
        PayeeBalance(
            account_id=row["account_id"],
            payee_type=row["account__payee_type"],
            payee_id=cast(int, row["account__payee_id"]),  # filtered: not null
            currency=row["currency"],
            amount=-row["total"],
        )
        for row in rows
        if row["total"]
    ]


def trial_balance(*, as_of: datetime.datetime | None = None) -> dict[str, int]:
    """Sum of every entry per currency. Each value must be 0; anything else is a bug."""
    return _by_currency(_entries(as_of=as_of), keep_zero=True)


def entries_for_account(
    *,
    account: Account,
    currency: str | None = None,
    as_of: datetime.datetime | None = None,
) -> QuerySet[Entry]:
    """The account's entries, oldest first, with transaction and account joined (no N+1)."""
    entries = _entries(as_of=as_of).filter(account=account)
    if currency is not None:
        entries = entries.filter(currency=currency)
    return entries.select_related("transaction", "account").order_by("posted_at", "pk")


def entry_list() -> QuerySet[Entry]:
    """All entries, newest first, with what the admin changelist shows joined in."""
    return Entry.objects.select_related("transaction", "account").order_by("-posted_at", "-pk")


def transaction_list() -> QuerySet[Transaction]:
    """All transactions, newest first, with the reversed transaction joined in."""
    return Transaction.objects.select_related("reversal_of").order_by("-posted_at", "-pk")
