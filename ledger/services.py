"""Writes to the ledger: post a balanced transaction, reverse one, get accounts.

Every money movement in the system goes through ``ledger_post`` once, with an idempotency key
derived from the row it records (``f"invoice:{invoice.id}:paid"``), so a retried webhook or task
posts nothing twice. Amounts are signed minor units, debit positive / credit negative; build
lines with ``Line.debit`` / ``Line.credit`` to keep the sign readable.
"""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError
from django.db import transaction as db_transaction
from django.db.models import Q, Sum
from django.utils import timezone

from ledger.chart import SYSTEM_ACCOUNTS, SystemAccount, payee_account_code
from ledger.exceptions import (
    IdempotencyConflictError,
    InvalidPostingError,
    InvalidReversalError,
    UnbalancedPostingError,
    UnknownAccountError,
)
from ledger.models import Account, Entry, Transaction
from revenue_site.money import MoneyError, allocate, apply_rate, normalize_currency

# BigIntegerField bounds: refuse what the database would overflow on.
_MAX_AMOUNT = 2**63 - 1
REVERSAL_SOURCE = "ledger.reversal"


@dataclass(frozen=True, slots=True)
class Line:
    """One side of a posting: signed minor units (debit +, credit -) on a saved account."""

    account: Account
    amount: int
    currency: str

    @classmethod
    def debit(cls, account: Account, amount: int, currency: str) -> Line:
        return cls(account, _positive(amount), currency)

    @classmethod
    def credit(cls, account: Account, amount: int, currency: str) -> Line:
        return cls(account, -_positive(amount), currency)


def _positive(amount: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidPostingError(f"debit/credit amounts are positive ints, not {amount!r}")
    return amount


# (account id, currency, signed amount): what a posting is compared on for idempotency.
_LineKey = tuple[int, str, int]


def _normalize_lines(lines: Sequence[Line]) -> list[_LineKey]:
    if not lines:
        raise InvalidPostingError("a posting needs at least two lines")
    normalized: list[_LineKey] = []
    totals: dict[str, int] = defaultdict(int)
    for line in lines:
        if not isinstance(line, Line):
            raise InvalidPostingError(f"expected a Line, got {type(line).__name__}")
        amount = line.amount
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidPostingError(f"amounts are int minor units, not {type(amount).__name__}")
        if amount == 0:
            raise InvalidPostingError("a line cannot be zero")
        if abs(amount) > _MAX_AMOUNT:
            raise InvalidPostingError(f"amount {amount} does not fit a 64-bit integer")
        try:
            currency = normalize_currency(line.currency)
        except MoneyError as exc:
            raise InvalidPostingError(str(exc)) from exc
        if not isinstance(line.account, Account) or line.account.pk is None:
            raise UnknownAccountError(f"line account {line.account!r} is not a saved Account")
        normalized.append((line.account.pk, currency, amount))
        totals[currency] += amount
    if len(normalized) < 2:
        raise InvalidPostingError("a posting needs at least two lines")
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedPostingError(
            f"debits and credits differ by {unbalanced} (minor units per currency)"
        )
    return normalized


def _check_text(value: str, name: str, max_length: int, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value):
        raise InvalidPostingError(f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise InvalidPostingError(f"{name} is longer than {max_length} characters")
    return value


def _post(
    *,
    idempotency_key: str,
    lines: Sequence[Line],
    source: str,
    memo: str,
    posted_at: datetime.datetime | None,
    reversal_of: Transaction | None = None,
) -> Transaction:
    normalized = _normalize_lines(lines)
    _check_text(idempotency_key, "idempotency_key", 255)
    _check_text(source, "source", 100)
    _check_text(memo, "memo", 500, required=False)
    if posted_at is None:
        posted_at = timezone.now()
    elif not isinstance(posted_at, datetime.datetime) or timezone.is_naive(posted_at):
        raise InvalidPostingError("posted_at must be a timezone-aware datetime")
    account_ids = {account_id for account_id, _, _ in normalized}
    if Account.objects.filter(pk__in=account_ids).count() != len(account_ids):
        raise UnknownAccountError("a line names an account that does not exist")

    try:
        # A savepoint: on a duplicate key only this insert is undone, not the caller's work.
        with db_transaction.atomic():
            txn = Transaction.objects.create(
                source=source,
                idempotency_key=idempotency_key,
                memo=memo,
                posted_at=posted_at,
                reversal_of=reversal_of,
            )
    except IntegrityError:
        # The unique (source, idempotency_key) constraint decides who posted first; a
        # concurrent poster blocks on it until the first commits, then lands here.
        existing = Transaction.objects.filter(
            source=source, idempotency_key=idempotency_key
        ).first()
        if existing is None:
            raise
        _check_replay(existing, normalized)
        return existing

    Entry.objects.bulk_create(
        Entry(
            transaction=txn,
            account_id=account_id,
            amount=amount,
            currency=currency,
            posted_at=posted_at,
        )
        for account_id, currency, amount in normalized
    )
    return txn


def _check_replay(existing: Transaction, normalized: list[_LineKey]) -> None:
    posted = Counter(existing.entries.values_list("account_id", "currency", "amount"))
    if posted != Counter(normalized):
        raise IdempotencyConflictError(
            f"{existing.source}:{existing.idempotency_key} was already posted with other lines"
        )


@db_transaction.atomic
def ledger_post(
    *,
    idempotency_key: str,
    lines: Sequence[Line],
    source: str,
    memo: str = "",
    posted_at: datetime.datetime | None = None,
) -> Transaction:
    """Post a balanced transaction once per (source, idempotency_key) and return it.

    ``lines`` are signed minor units (debit +, credit -) that must sum to zero per currency;
    there must be at least two, none zero, all on saved accounts. ``posted_at`` (aware,
    default now) is the accounting date that balances "as of" use.

    Posting the same (source, key) again returns the first transaction and writes nothing,
    also when two callers race (the database's unique constraint decides, not a
    check-then-insert). Reusing a key with different lines raises IdempotencyConflictError.

    Raises InvalidPostingError (UnbalancedPostingError, UnknownAccountError) on bad input; on
    any error nothing is written.
    """
    return _post(
        idempotency_key=idempotency_key,
        lines=lines,
        source=source,
        memo=memo,
        posted_at=posted_at,
    )


@db_transaction.atomic
def ledger_reverse(
    *,
    transaction: Transaction,
    idempotency_key: str,
    memo: str = "",
    fraction: Decimal | None = None,
    amount: int | None = None,
    source: str = REVERSAL_SOURCE,
    posted_at: datetime.datetime | None = None,
) -> Transaction:
    """Post a transaction that reverses all or part of ``transaction`` (refunds, clawbacks).

    - neither ``fraction`` nor ``amount``: reverse everything not yet reversed;
    - ``fraction`` (0 < f ≤ 1, Decimal): reverse that share of the original's gross (its debit
      total per currency, rounded half up);
    - ``amount`` (int minor units, single-currency originals only): reverse that much of the
      gross, e.g. a Stripe partial refund amount.

    The reversed amount is spread over the original's lines pro rata to what each line has
    left after earlier reversals (largest remainder), separately for the debit and the credit
    side, so the reversal balances exactly, no line is ever reversed past zero, and partial
    reversals that add up to the whole bring every line exactly back to zero.

    Idempotent on (source, idempotency_key) like ``ledger_post``. Raises InvalidReversalError
    when the original is itself a reversal or the request exceeds what is left to reverse.
    """
    # Serialise reversals of one original: each computes from what earlier ones left.
    original = Transaction.objects.select_for_update().get(pk=transaction.pk)
    if original.reversal_of_id is not None:
        raise InvalidReversalError("a reversal cannot itself be reversed; post a new entry")
    # Safe as a lookup first because the lock above serialises reversals of this original;
    # the unique constraint in _post still backs it.
    existing = Transaction.objects.filter(source=source, idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.reversal_of_id != original.pk:
            raise IdempotencyConflictError(
                f"{source}:{idempotency_key} was already posted for another transaction"
            )
        return existing
    if fraction is not None and amount is not None:
        raise InvalidReversalError("pass fraction or amount, not both")

    # Per (account, currency): the original's net amount and what is left after reversals.
    # Lines are netted per account, so an account on both sides counts once, on its net side.
    rows = (
        Entry.objects.filter(Q(transaction=original) | Q(transaction__reversal_of=original))
        .values("account_id", "currency")
        .annotate(original=Sum("amount", filter=Q(transaction=original)), left=Sum("amount"))
        .order_by("currency", "account_id")
    )
    gross: dict[str, int] = defaultdict(int)
    remaining: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for row in rows:
        if row["original"] and row["original"] > 0:
            gross[row["currency"]] += row["original"]
        if row["left"]:
            remaining[row["currency"]].append((row["account_id"], row["left"]))

    targets = _reversal_targets(gross=gross, fraction=fraction, amount=amount)
    accounts = Account.objects.in_bulk({aid for rows in remaining.values() for aid, _ in rows})
    lines: list[Line] = []
    for currency, target in sorted(targets.items()):
        debits = [(aid, left) for aid, left in remaining[currency] if left > 0]
        credits = [(aid, -left) for aid, left in remaining[currency] if left < 0]
        left = sum(total for _, total in debits)
        if target < 0:
            target = left
        if target == 0:
            continue
        if target > left:
            raise InvalidReversalError(
                f"cannot reverse {target} {currency}: only {left} is left to reverse"
            )
        for side, sign in ((debits, -1), (credits, 1)):
            parts = allocate(target, [total for _, total in side])
            lines.extend(
                Line(accounts[aid], sign * part, currency)
                for (aid, _), part in zip(side, parts, strict=True)
                if part
            )
    if not lines:
        raise InvalidReversalError("nothing to reverse")
    return _post(
        idempotency_key=idempotency_key,
        lines=lines,
        source=source,
        memo=memo or f"Reversal of transaction {original.pk}",
        posted_at=posted_at,
        reversal_of=original,
    )


def _left_to_reverse(original: Transaction) -> int:
    """What is left of ``original``'s debit side after its reversals (minor units)."""
    rows = (
        Entry.objects.filter(Q(transaction=original) | Q(transaction__reversal_of=original))
        .values("account_id")
        .annotate(left=Sum("amount"))
        .order_by()
    )
    return sum(row["left"] for row in rows if row["left"] > 0)


@db_transaction.atomic
def ledger_reverse_in_order(
    *,
    transactions: Sequence[Transaction],
    amount: int,
    idempotency_key: str,
    source: str = REVERSAL_SOURCE,
    memo: str = "",
    posted_at: datetime.datetime | None = None,
) -> tuple[Transaction | None, int]:
    """Reverse ``amount`` over single-currency ``transactions``, each up to what is left of it,
    in the order given (e.g. an invoice's posting, then the postings that booked back disputes
    on it that the merchant won).

    The first part is keyed ``idempotency_key``; a part taken from a later transaction is keyed
    ``<idempotency_key>:<that transaction's key>``. Returns (the first part, the amount that
    could not be reversed): (None, amount) when nothing was left. Idempotent on the first key:
    when it is already posted, returns (it, 0) and posts nothing.
    """
    existing = Transaction.objects.filter(source=source, idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing, 0
    first = None
    rest = amount
    for original in transactions:
        part = min(rest, _left_to_reverse(original))
        if part <= 0:
            continue
        key = idempotency_key if first is None else f"{idempotency_key}:{original.idempotency_key}"
        reversal = ledger_reverse(
            transaction=original,
            idempotency_key=key,
            source=source,
            amount=part,
            memo=memo,
            posted_at=posted_at,
        )
        first = first or reversal
        rest -= part
        if rest == 0:
            break
    return first, rest


def _reversal_targets(
    *, gross: dict[str, int], fraction: Decimal | None, amount: int | None
) -> dict[str, int]:
    """How much to reverse per currency; None means "all that is left" (capped later)."""
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvalidReversalError("amount must be a positive int of minor units")
        if len(gross) != 1:
            raise InvalidReversalError("amount needs a single-currency original; use fraction")
        return dict.fromkeys(gross, amount)
    if fraction is None:
        return dict.fromkeys(gross, -1)  # resolved to "what is left" below
    if not isinstance(fraction, Decimal) or not fraction.is_finite() or not 0 < fraction <= 1:
        raise InvalidReversalError("fraction must be a Decimal with 0 < fraction <= 1")
    return {currency: apply_rate(total, fraction) for currency, total in gross.items()}


def account_for_payee(*, payee_type: str, payee_id: int, name: str = "") -> Account:
    """The payable (liability) account of an affiliate, creator or provider, created on first use.

    Race-safe: creation relies on the unique ``code`` (Django's get_or_create retries the read
    after an IntegrityError inside a savepoint).
    """
    payee_type = Account.PayeeType(payee_type).value
    if isinstance(payee_id, bool) or not isinstance(payee_id, int) or payee_id <= 0:
        raise InvalidPostingError("payee_id must be a positive int")
    account, _ = Account.objects.get_or_create(
        code=payee_account_code(payee_type, payee_id),
        defaults={
            "name": name or f"Payable to {payee_type} {payee_id}",
            "type": Account.Type.LIABILITY,
            "payee_type": payee_type,
            "payee_id": payee_id,
        },
    )
    return account


def system_account(code: SystemAccount | str) -> Account:
    """A platform account from ``ledger.chart`` by code, created on first use (race-safe).

    Raises UnknownAccountError for a code that is not in the chart.
    """
    try:
        key = SystemAccount(code)
    except ValueError as exc:
        raise UnknownAccountError(f"{code!r} is not a system account code") from exc
    spec = SYSTEM_ACCOUNTS[key]
    account, _ = Account.objects.get_or_create(
        code=key.value, defaults={"name": spec.name, "type": spec.type.value}
    )
    return account
