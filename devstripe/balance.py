"""Balance transactions as Stripe books them: fees, refunds and disputes.

localstripe creates a balance transaction for every charge and refund, all with ``fee`` 0.
Here, as Stripe does in the US for domestic cards:

- a card charge's transaction carries Stripe's standard fee, 2.9 % of the amount rounded half
  up plus 30 minor units (``fee_details``: one ``stripe_fee``), ``net = amount - fee``. Other
  payment method types (SEPA debits) keep fee 0: their pricing is not emulated. Its funds
  are ``pending`` until ``available_on``, two days later (on the test clock's time, if any);
- a refund's transaction is ``-amount`` (available at once) with fee 0 (Stripe no longer
  returns the processing fee on refunds);
- a dispute that withdraws funds (every dispute this fake opens) gets a withdrawal in its
  ``balance_transactions`` when it opens: ``type`` ``adjustment``, ``reporting_category``
  ``dispute``, ``-amount`` and the 1500 dispute fee; a won dispute gets a reinstatement
  (``dispute_reversal``, ``+amount``, fee ``-1500``: the fee comes back) before its
  ``charge.dispute.funds_reinstated``. Their ``source`` is the dispute.

``GET /v1/balance_transactions/<id>`` and ``GET /v1/balance_transactions`` (also under
``/v1/balance/history``; filters ``source``, ``type``, ``currency``; newest first, paged with
``limit`` / ``starting_after``) serve them. Every one is in the ``payments`` balance
(``balance_type``); like Stripe's, they carry no ``livemode``.

``GET /v1/balance`` is the balance those transactions add up to, per currency: ``available``
the net of the ones available by now, ``pending`` the rest (all under ``source_types.card``:
the fake does not tell card funds from bank debits), the platform's ``usd`` at 0 when it
holds nothing else. ``balance.available`` (the balance as its object) is emitted when a read
finds the available balance changed since the last one told (the first read tells): Stripe
tells when funds become available, which the fake only notices when the balance is read.

Importing this module patches localstripe (after ``disputes``, whose dispute it extends).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from localstripe import resources as ls
from localstripe.errors import UserError
from localstripe.resources import BalanceTransaction, List, StripeObject, store

from . import disputes
from .resources.base import emit, now

CARD_FEE_RATE = Decimal("0.029")
CARD_FEE_FIXED = 30
DISPUTE_FEE = 1500
# The balance the platform reports when it holds nothing (its default currency).
DEFAULT_CURRENCY = "usd"
# Where the last balance told by ``balance.available`` is kept (not an object key).
_TOLD_KEY = "balance"
# Stripe makes funds of a card charge available two days later in the US.
AVAILABLE_AFTER_SECONDS = 2 * 86400


def card_fee(amount: int) -> int:
    """Stripe's standard card fee on ``amount`` minor units: 2.9 % (half up) + 30."""
    rate_part = (Decimal(amount) * CARD_FEE_RATE).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(rate_part) + CARD_FEE_FIXED


def _fee_details(fee: int, currency: str, description: str) -> list[dict[str, Any]]:
    if fee == 0:
        return []
    return [
        {
            "amount": fee,
            "application": None,
            "currency": currency,
            "description": description,
            "type": "stripe_fee",
        }
    ]


def _set_fee(txn: BalanceTransaction, fee: int, description: str) -> None:
    txn.fee = fee
    txn.fee_details = _fee_details(fee, txn.currency, description)


def _paid_by_card(charge_id: str) -> bool:
    charge = store.get("charge:" + charge_id)
    pm = store.get("payment_method:" + (getattr(charge, "payment_method", None) or ""))
    return getattr(pm, "type", "card") == "card"


_orig_init: Any = None  # the original, captured by install()


def _init(self: BalanceTransaction, **kwargs: Any) -> None:
    _orig_init(self, **kwargs)
    self.balance_type = "payments"
    if self.type == "charge":
        self.available_on = self.created + AVAILABLE_AFTER_SECONDS
        if _paid_by_card(self.source):
            _set_fee(self, card_fee(self.amount), "Stripe processing fees")


def _is_available(txn: BalanceTransaction) -> bool:
    # Funds are pending until available_on (on the test clock's time when there is one).
    return now() >= txn.available_on


def _fixup(self: BalanceTransaction, obj: dict[str, Any]) -> None:
    obj["status"] = "available" if _is_available(self) else "pending"
    obj.pop("livemode", None)  # a balance transaction has none at this API version
    obj.setdefault("balance_type", "payments")


def balance_transaction_add(
    *,
    source: str,
    amount: int,
    currency: str,
    type: str,
    category: str,
    description: str | None,
    fee: int = 0,
    fee_description: str = "",
) -> BalanceTransaction:
    """A balance transaction of ``source`` available at once (disputes, payouts, transfers).

    localstripe's constructor knows only charges and refunds, so the object is built here.
    """
    txn = BalanceTransaction.__new__(BalanceTransaction)
    StripeObject.__init__(txn)
    txn.amount = amount
    txn.available_on = txn.created
    txn.balance_type = "payments"
    txn.currency = currency
    txn.description = description
    txn.exchange_rate = None
    txn.reporting_category = category
    txn.source = source
    txn.type = type
    _set_fee(txn, fee, fee_description)
    return txn


def _dispute_transaction(
    dispute: disputes.Dispute, *, amount: int, fee: int, category: str, description: str
) -> BalanceTransaction:
    return balance_transaction_add(
        source=dispute.id,
        amount=amount,
        currency=dispute.currency,
        type="adjustment",
        category=category,
        description=description,
        fee=fee,
        fee_description="Dispute fee",
    )


_orig_dispute_init: Any = None  # the original, captured by install()


def _dispute_init(self: disputes.Dispute, charge: Any, reason: str = "fraudulent") -> None:
    _orig_dispute_init(self, charge, reason=reason)
    if not self.status.startswith("warning"):  # inquiries withdraw nothing
        self.balance_transactions.append(
            _dispute_transaction(
                self,
                amount=-self.amount,
                fee=DISPUTE_FEE,
                category="dispute",
                description=f"Chargeback withdrawal for {self.charge}",
            )
        )


_orig_close: Any = None  # the original, captured by install()


def _close(self: disputes.Dispute, status: str) -> None:
    if status == "won":
        # Stripe gives the disputed amount and the dispute fee back, then tells the webhooks.
        self.balance_transactions.append(
            _dispute_transaction(
                self,
                amount=self.amount,
                fee=-DISPUTE_FEE,
                category="dispute_reversal",
                description=f"Chargeback reversal for {self.charge}",
            )
        )
    _orig_close(self, status)


def _list_all(
    cls: type[BalanceTransaction],
    url: str,
    source: str | None = None,
    type: str | None = None,
    currency: str | None = None,
    limit: Any = None,
    starting_after: str | None = None,
    **kwargs: Any,
) -> List:
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
    for name, value in (("source", source), ("type", type), ("currency", currency)):
        if value is not None and not isinstance(value, str):
            raise UserError(400, f"Invalid string: {name}")
    li = List(url, limit=limit, starting_after=starting_after)
    items = [v for k, v in store.items() if k.startswith(cls.object + ":")]
    if source is not None:
        items = [t for t in items if t.source == source]
    if type is not None:
        items = [t for t in items if t.type == type]
    if currency is not None:
        items = [t for t in items if t.currency == currency.lower()]
    # Newest first; within one second, the later one first.
    ranked = sorted(enumerate(items), key=lambda p: (p[1].created, p[0]), reverse=True)
    li._list = [t for _, t in ranked]
    return li


# --- the balance ----------------------------------------------------------------------------
class Balance:
    """The platform balance: its balance transactions added up per currency, as read now."""

    object = "balance"

    def __init__(self) -> None:
        available: dict[str, int] = {}
        pending: dict[str, int] = {}
        for key, txn in list(store.items()):
            if key.startswith(BalanceTransaction.object + ":"):
                into = available if _is_available(txn) else pending
                into[txn.currency] = into.get(txn.currency, 0) + txn.amount - txn.fee
        for amounts in (available, pending):
            if not amounts:
                amounts[DEFAULT_CURRENCY] = 0
        self.available = _amounts(available)
        self.pending = _amounts(pending)

    def _export(self, expand: Any = None) -> dict[str, Any]:
        currencies = sorted({a["currency"] for a in self.available + self.pending})
        return {
            "object": self.object,
            "available": [dict(a, source_types=dict(a["source_types"])) for a in self.available],
            # A Connect platform's funds held for its connected accounts' negative balances.
            "connect_reserved": [{"amount": 0, "currency": c} for c in currencies],
            "livemode": False,
            "pending": [dict(a, source_types=dict(a["source_types"])) for a in self.pending],
        }


def _amounts(by_currency: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {"amount": amount, "currency": currency, "source_types": {"card": amount}}
        for currency, amount in sorted(by_currency.items())
    ]


def _balance_retrieve(cls: type[ls.Balance], **kwargs: Any) -> Balance:
    """``GET /v1/balance``; tells ``balance.available`` when the available balance changed."""
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
    balance = Balance()
    told = store.get(_TOLD_KEY)
    if getattr(told, "available", None) != balance.available:
        store[_TOLD_KEY] = balance
        emit("balance.available", balance)
    return balance


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global _orig_init, _orig_dispute_init, _orig_close
    _orig_init = BalanceTransaction.__init__
    _orig_dispute_init = disputes.Dispute.__init__
    _orig_close = disputes.Dispute._close
    ls.Balance._api_retrieve = classmethod(_balance_retrieve)
    BalanceTransaction.__init__ = _init
    BalanceTransaction._devstripe_fixup = _fixup
    BalanceTransaction._api_list_all = classmethod(_list_all)
    disputes.Dispute.__init__ = _dispute_init  # type: ignore[method-assign]
    disputes.Dispute._close = _close  # type: ignore[method-assign]
