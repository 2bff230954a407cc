"""Customers and their payment methods, as Stripe renders them.

- a customer has ``balance`` (``invoices.py`` keeps localstripe's credit in
  ``account_balance``) and none of the fields Stripe removed (``account_balance``,
  ``business_vat_id``); ``test_clock`` is the clock it lives on (``test_clocks.py``);
  ``currency`` is its subscriptions' or invoices' (null before it has any; localstripe says
  "eur"); ``sources``, ``subscriptions`` and ``tax_ids`` only when expanded, as in Stripe;
- ``GET /v1/customers/<id>/payment_methods`` (``stripe.Customer.list_payment_methods``).
"""

from __future__ import annotations

from typing import Any

from localstripe.errors import UserError
from localstripe.resources import Customer, List, PaymentMethod, StripeObject, store

# ``invoices`` renders a customer's ``balance``; this module's fix-up runs after its one.
from . import invoices  # noqa: F401

_prev_customer_fixup: Any = None  # the original, captured by install()


def _customer_fixup(self: Customer, obj: dict[str, Any]) -> None:
    if _prev_customer_fixup is not None:
        _prev_customer_fixup(self, obj)
    obj.setdefault("balance", -getattr(self, "account_balance", 0))
    for removed in ("account_balance", "business_vat_id"):
        obj.pop(removed, None)
    obj["test_clock"] = getattr(self, "test_clock", None)
    obj["currency"] = _currency(self)
    obj.setdefault("invoice_prefix", self.id[4:12].upper())
    obj.setdefault("next_invoice_sequence", 1)
    obj.setdefault("tax_exempt", "none")


def _currency(customer: Customer) -> str | None:
    """The currency the customer is billed in: its first subscription's or invoice's."""
    billed = [
        obj
        for key, obj in list(store.items())
        if key.startswith(("subscription:", "invoice:"))
        and getattr(obj, "customer", None) == customer.id
    ]
    for obj in sorted(billed, key=lambda o: o.created):
        if currency := _currency_of(obj):
            return currency
    return None


def _currency_of(obj: Any) -> str | None:
    if getattr(obj, "object", None) == "subscription":
        items = obj.items._list
        return items[0].plan.currency if items else None
    return getattr(obj, "currency", None)


# Stripe renders these lists only when asked for (``expand=["sources"]``...).
_INCLUDABLE = ("sources", "subscriptions", "tax_ids")


def _customer_export(self: Customer, expand: Any = None) -> dict[str, Any]:
    obj = StripeObject._export(self, expand)
    asked = {path.split(".")[0] for path in expand or [] if isinstance(path, str)}
    for key in _INCLUDABLE:
        if key not in asked:
            obj.pop(key, None)
    return obj


def _list_payment_methods(
    id: str,
    type: str | None = None,
    limit: Any = None,
    starting_after: str | None = None,
    allow_redisplay: str | None = None,
    **kwargs: Any,
) -> List:
    """``GET /v1/customers/<id>/payment_methods``: newest first, optionally of one ``type``."""
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
    Customer._api_retrieve(id)  # 404 if it does not exist
    li = List(f"/v1/customers/{id}/payment_methods", limit=limit, starting_after=starting_after)
    li._list = sorted(
        (
            pm
            for key, pm in list(store.items())
            if key.startswith("payment_method:")
            and pm.customer == id
            and (type is None or pm.type == type)
        ),
        key=lambda pm: pm.created,
        reverse=True,
    )
    return li


_prev_pm_fixup: Any = None  # the original, captured by install()


def _payment_method_fixup(self: PaymentMethod, obj: dict[str, Any]) -> None:
    if _prev_pm_fixup is not None:
        _prev_pm_fixup(self, obj)
    obj.setdefault("allow_redisplay", "unspecified")


extra_routes: list[tuple[str, str, Any]] = [
    ("GET", "/v1/customers/{id}/payment_methods", _list_payment_methods),
]


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global _prev_customer_fixup, _prev_pm_fixup
    _prev_customer_fixup = getattr(Customer, "_devstripe_fixup", None)
    _prev_pm_fixup = getattr(PaymentMethod, "_devstripe_fixup", None)
    Customer._devstripe_fixup = _customer_fixup
    Customer._export = _customer_export
    PaymentMethod._devstripe_fixup = _payment_method_fixup
