"""Payouts of the platform balance to its bank account, with their balance transactions.

localstripe's ``Payout`` takes only ``eur``, points at a bank account that does not exist and
at a made-up balance transaction. Here, as Stripe does:

- ``POST /v1/payouts`` takes any currency (three letters, stored lowercase; ``amount`` > 0)
  and pays it to the platform's bank account for that currency (``ba_…``, one per currency,
  ``account`` the platform account, ``default_for_currency``), served expanded with
  ``expand[]=destination`` and at ``GET /v1/accounts/<acct>/external_accounts[/<ba id>]``;
- the payout's ``balance_transaction`` is real: ``type`` and ``reporting_category``
  ``payout``, ``-amount``, fee 0, ``source`` the payout, available at once (Stripe's balance
  no longer holds the money from the payout's creation on);
- a failed payout also gets its ``failure_balance_transaction`` (``payout_failure``,
  ``+amount``, reporting category ``payout_reversal``): the money is back in the balance; a
  canceled one gets a ``payout_cancel`` one the same way.

Fake-only, kept from localstripe: the creation parameter ``status`` (``paid``, ``failed`` or
``pending``, the default) decides the outcome at once; ``paid`` and ``failed`` emit
``payout.created`` then ``payout.paid`` / ``payout.failed``. Payouts never fail for an
insufficient balance (the platform balance is not emulated), and a paid payout never fails
later.

Importing this module patches localstripe (after ``balance``, whose balance transactions it
builds on).
"""

from __future__ import annotations

import re
from typing import Any

from localstripe import resources as ls
from localstripe.errors import UserError
from localstripe.resources import (
    BalanceTransaction,
    List,
    Payout,
    StripeObject,
    random_id,
    store,
    try_convert_to_int,
)

from . import balance
from .resources.base import ACCOUNT_ID, _require, emit, now

_CURRENCY = re.compile(r"^[a-z]{3}$")
_STATUSES = ("paid", "pending", "failed")
TWO_DAYS = 2 * 86400


class PlatformBankAccount(StripeObject):
    """The platform's bank account for one currency (an external account of the account)."""

    object = "bank_account"
    _id_prefix = "ba_"

    def __init__(self, currency: str) -> None:
        super().__init__()
        # A bank account has neither at this API version (StripeObject sets both).
        del self.created, self.livemode
        self.account = ACCOUNT_ID
        self.account_holder_name = "Revenue Agent System"
        self.account_holder_type = "company"
        self.account_type = None
        self.available_payout_methods = ["standard", "instant"]
        self.bank_name = "STRIPE TEST BANK"
        self.country = "US"
        self.currency = currency
        self.customer = None
        self.default_for_currency = True
        self.fingerprint = random_id(16)
        self.future_requirements = _no_requirements()
        self.last4 = "6789"
        self.metadata: dict[str, Any] = {}
        self.requirements = _no_requirements()
        self.routing_number = "110000000"
        self.status = "new"


def _no_requirements() -> dict[str, list[Any]]:
    return {"currently_due": [], "errors": [], "past_due": [], "pending_verification": []}


def bank_account_for(currency: str) -> PlatformBankAccount:
    """The platform's bank account in ``currency``, opened on first use."""
    for key, value in store.items():
        if key.startswith("bank_account:") and value.currency == currency:
            return value
    return PlatformBankAccount(currency)


def _payout_transaction(
    payout: Payout, *, amount: int, type: str, category: str, description: str
) -> BalanceTransaction:
    return balance.balance_transaction_add(
        source=payout.id,
        amount=amount,
        currency=payout.currency,
        type=type,
        category=category,
        description=description,
    )


def _payout_init(
    self: Payout,
    amount: Any = None,
    currency: Any = None,
    description: Any = None,
    metadata: Any = None,
    statement_descriptor: Any = None,
    destination: Any = None,
    method: Any = None,
    source_type: Any = None,
    status: Any = None,
    **kwargs: Any,
) -> None:
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    amount = try_convert_to_int(amount)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise UserError(400, "Invalid positive integer: amount")
    currency = currency.lower() if isinstance(currency, str) else currency
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise UserError(400, "Invalid currency")
    if destination is not None and (
        not isinstance(destination, str) or store.get("bank_account:" + destination) is None
    ):
        raise UserError(400, f"No such external account: '{destination}'")
    try:
        _require(description is None or isinstance(description, str))
        _require(metadata is None or isinstance(metadata, dict))
        _require(
            statement_descriptor is None
            or (isinstance(statement_descriptor, str) and len(statement_descriptor) <= 22)
        )
        _require(method in (None, "standard", "instant"))
        _require(source_type is None or isinstance(source_type, str))
        _require(status is None or status in _STATUSES)
    except AssertionError:
        raise UserError(400, "Bad request") from None

    # All exceptions must be raised before this point.
    StripeObject.__init__(self)
    self.amount = amount
    self.currency = currency
    self.description = description
    self.destination = destination or bank_account_for(currency).id
    self.metadata = metadata or {}
    self.method = method or "standard"
    self.source_type = source_type or "card"
    self.statement_descriptor = statement_descriptor
    self.arrival_date = now() + TWO_DAYS
    self.application_fee = None
    self.application_fee_amount = None
    self.automatic = False
    self.balance_transaction = _payout_transaction(
        self,
        amount=-amount,
        type="payout",
        category="payout",
        description="STRIPE PAYOUT",
    ).id
    self.failure_balance_transaction = None
    self.failure_code = None
    self.failure_message = None
    self.original_payout = None
    self.payout_method = None
    # A manual payout is not reconciled against the transactions it pays out.
    self.reconciliation_status = "not_applicable"
    self.reversed_by = None
    self.status = "pending"
    self.trace_id = {"status": "pending", "value": None}
    self.type = "bank_account"

    emit("payout.created", self)
    if status == "failed":
        self.failure_balance_transaction = _payout_transaction(
            self,
            amount=amount,
            type="payout_failure",
            category="payout_reversal",
            description="Payout failure",
        ).id
        self.failure_code = "could_not_process"
        self.failure_message = "The bank could not process this payout."
    if status in ("paid", "failed"):
        self.status = status
        self.trace_id = {"status": "unsupported", "value": None}
        emit(f"payout.{status}", self)


def _payout_cancel(cls: type[Payout], id: str, **kwargs: Any) -> Payout:
    payout = Payout._api_retrieve(id)
    if payout.status != "pending":  # only pending payouts can be canceled
        raise UserError(400, "Cannot cancel payout")
    payout.failure_balance_transaction = _payout_transaction(
        payout,
        amount=payout.amount,
        type="payout_cancel",
        category="payout_reversal",
        description="Payout cancellation",
    ).id
    payout._update(status="canceled", trace_id={"status": "unsupported", "value": None})
    emit("payout.canceled", payout)
    return payout


def _external_account(id: str, source_id: str, **kwargs: Any) -> PlatformBankAccount:
    # localstripe's route helper passes the second path parameter only as ``source_id``.
    found = store.get("bank_account:" + source_id)
    if id != ACCOUNT_ID or found is None:
        raise UserError(404, f"No such external account: '{source_id}'")
    return found


def _external_accounts(
    id: str, limit: Any = None, starting_after: Any = None, **kwargs: Any
) -> List:
    """The platform's bank accounts; a connected account (``connect.py``) has none here."""
    if id != ACCOUNT_ID and store.get("account:" + id) is None:
        raise UserError(404, f"No such account: '{id}'")
    li = List(f"/v1/accounts/{id}/external_accounts", limit=limit, starting_after=starting_after)
    if id == ACCOUNT_ID:
        li._list = [v for k, v in store.items() if k.startswith("bank_account:")]
    return li


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    Payout.__init__ = _payout_init
    Payout._api_cancel = classmethod(_payout_cancel)
    ls.extra_apis.extend(
        [
            ("GET", "/v1/accounts/{id}/external_accounts/{source_id}", _external_account),
            ("GET", "/v1/accounts/{id}/external_accounts", _external_accounts),
        ]
    )
