"""Stripe Connect, just enough for payouts: connected accounts and transfers.

- ``POST /v1/accounts`` creates a connected account (``acct_…``; ``type`` express, custom or
  standard). Only accounts created here are valid transfer destinations.
- ``POST /v1/transfers`` (``amount`` > 0, ``currency``, ``destination``; optional
  ``description``, ``metadata``, ``transfer_group``) moves money to a connected account; an
  unknown destination is refused like Stripe does (400 ``No such destination``). With an
  ``Idempotency-Key`` a replay returns the first transfer (``idempotency.py``).
  ``GET /v1/transfers[/<id>]`` (filter ``destination``) read them back.

Not emulated: the platform balance (transfers never fail for insufficient funds), reversals,
``transfer.created`` events, and reading connected accounts back (``GET /v1/accounts/<id>``
still serves only the platform account).
"""

from __future__ import annotations

from typing import Any

from localstripe.errors import UserError
from localstripe.resources import List, StripeObject, random_id, store, try_convert_to_int


class ConnectedAccount(StripeObject):
    object = "account"
    _id_prefix = "acct_"

    def __init__(
        self,
        type: str = "express",
        country: str = "US",
        email: str | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if type not in ("express", "custom", "standard"):
            raise UserError(400, "Invalid type")
        super().__init__()
        self.type = type
        self.country = country
        self.email = email
        self.metadata = metadata or {}
        self.charges_enabled = True
        self.payouts_enabled = True
        self.capabilities = {"transfers": "active"}
        self.details_submitted = True


class Transfer(StripeObject):
    object = "transfer"
    _id_prefix = "tr_"

    def __init__(
        self,
        amount: Any = None,
        currency: Any = None,
        destination: Any = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        transfer_group: str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        amount = try_convert_to_int(amount)
        if not isinstance(amount, int) or amount <= 0:
            raise UserError(400, "Invalid positive integer: amount")
        if not isinstance(currency, str) or len(currency) != 3:
            raise UserError(400, "Invalid currency")
        if not isinstance(destination, str) or store.get("account:" + destination) is None:
            raise UserError(400, f"No such destination: '{destination}'")
        super().__init__()
        self.amount = amount
        self.amount_reversed = 0
        self.currency = currency.lower()
        self.description = description
        self.destination = destination
        self.destination_payment = "py_" + random_id(24)
        self.metadata = metadata or {}
        self.reversed = False
        self.transfer_group = transfer_group
        self.balance_transaction = None
        self.source_transaction = None

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> Transfer:
        raise UserError(405, "Updating transfers is not supported by devstripe")

    @classmethod
    def _api_delete(cls, id: str) -> Any:
        raise UserError(405, "Transfers cannot be deleted")

    @classmethod
    def _api_list_all(
        cls,
        url: str,
        destination: str | None = None,
        limit: Any = None,
        starting_after: str | None = None,
        **kwargs: Any,
    ) -> List:
        li = super()._api_list_all(url, limit=limit, starting_after=starting_after, **kwargs)
        if destination is not None:
            li._list = [t for t in li._list if t.destination == destination]
        return li


def _create_account(**data: Any) -> ConnectedAccount:
    return ConnectedAccount(**data)


extra_routes: list[tuple[str, str, Any]] = [("POST", "/v1/accounts", _create_account)]
crud_classes: list[type[StripeObject]] = [Transfer]
