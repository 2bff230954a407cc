"""localstripe 1.15's resources as Stripe has them at the pinned API version.

Each module changes localstripe's resource classes in place in its ``install()`` (their routes
and their internal calls go through the class attributes, so changing them is the smallest
change); ``devstripe.install`` applies them in this order, later ones wrapping earlier ones:

- ``base``: time (test clocks), events (``emit``; the ones localstripe never emits are
  emitted where they happen) and export (lenient ``expand``, per-class fix-ups, ids instead
  of nested objects where Stripe returns ids);
- ``catalog``: prices, plans, products;
- ``invoices``: paying invoices, invoice payments, invoice and line fix-ups, customer credit;
- ``customers``: customers and payment methods as Stripe renders them, a customer's payment
  methods;
- ``payments``: charges, payment intents, payment methods, refunds;
- ``subscriptions``: multi-item subscriptions and their items;
- ``prorations``: prorations when a subscription's items change mid-period;
- ``invoice_items``: ``/v1/invoiceitems``, manual invoices, ``POST /v1/invoices/<id>/finalize``;
- ``webhook_endpoints``: ``/v1/webhook_endpoints`` (a new resource: nothing to install).

Here: the on-disk pickle (shared ``/tmp/localstripe.pickle``) only when a state file is
given; it also holds the saved idempotent responses (``idempotency.py``).
"""

from __future__ import annotations

import pickle
from typing import Any

from localstripe.resources import Event, Store, StripeObject, store

from .. import idempotency
from . import (
    base,
    catalog,
    customers,
    invoice_items,
    invoices,
    payments,
    prorations,
    subscriptions,
    webhook_endpoints,
)
from .base import ACCOUNT_ID, API_VERSION, emit

__all__ = [
    "ACCOUNT_ID",
    "API_VERSION",
    "STATE_FILE",
    "base",
    "catalog",
    "crud_classes",
    "customers",
    "emit",
    "extra_routes",
    "invoice_items",
    "invoices",
    "payments",
    "prorations",
    "store",
    "subscriptions",
    "webhook_endpoints",
]

# --- storage: in memory unless a state file is configured ---------------------------------
STATE_FILE: str | None = None
# The saved idempotent responses travel in the state file under this key (not an object key).
_IDEMPOTENCY_KEY = "_devstripe:idempotency"


def _dump_to_disk(self: Store) -> None:
    if STATE_FILE:
        data = {**self, _IDEMPOTENCY_KEY: dict(idempotency.saved)}
        with open(STATE_FILE, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)


def _load_from_disk(self: Store) -> None:
    if not STATE_FILE:
        return
    try:
        with open(STATE_FILE, "rb") as f:
            data = pickle.load(f)  # noqa: S301 - our own dev-only state file
    except FileNotFoundError:
        return
    idempotency.forget_all()
    idempotency.saved.update(data.pop(_IDEMPOTENCY_KEY, {}))
    dict.clear(self)
    # The store is written on every insert, and localstripe inserts an object before its
    # __init__ has finished; an object caught half-built by the last write is left out.
    dict.update(
        self,
        {
            key: obj
            for key, obj in data.items()
            if not (isinstance(obj, Event) and not hasattr(obj, "type"))
        },
    )


# Served in addition to localstripe's own routes (and before them).
extra_routes: list[tuple[str, str, Any]] = [
    ("GET", "/v1/products/{id}/features", catalog._product_features),
    ("POST", "/v1/invoices/{id}/pay", invoices._pay_invoice_route),
    ("GET", "/v1/invoice_payments/{id}", invoices._retrieve_invoice_payment),
    ("GET", "/v1/invoice_payments", invoices._list_invoice_payments),
    *customers.extra_routes,
    *invoice_items.extra_routes,
]
crud_classes: list[type[StripeObject]] = [catalog.Price, webhook_endpoints.WebhookEndpoint]


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    Store.dump_to_disk = _dump_to_disk
    Store.try_load_from_disk = _load_from_disk
