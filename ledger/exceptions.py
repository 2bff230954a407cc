"""Errors raised by the ledger. Catch ``LedgerError`` for any of them."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class: the posting or reversal was refused and nothing was written."""


class InvalidPostingError(LedgerError, ValueError):
    """The lines are malformed: empty, zero or non-integer amounts, a bad currency or date."""


class UnbalancedPostingError(InvalidPostingError):
    """Debits and credits do not sum to zero in some currency."""


class UnknownAccountError(InvalidPostingError):
    """A line names an account that is not saved, or a system account code not in the chart."""


class IdempotencyConflictError(LedgerError):
    """The (source, idempotency key) was already posted with different lines."""


class InvalidReversalError(LedgerError, ValueError):
    """The reversal is not possible: a reversal of a reversal, more than what remains, …"""


class ImmutableLedgerError(LedgerError):
    """Ledger rows are append-only: they cannot be updated or deleted."""
