"""Prorations when a subscription's items change mid-period, as Stripe computes them.

``POST /v1/subscriptions/<id>`` with ``proration_behavior``:

- ``create_prorations`` (Stripe's default when omitted): for each item whose price or
  quantity changes (or which is added or deleted) while the subscription is ``active`` or
  ``past_due``, pending invoice items with ``proration: true`` and ``period`` {start: the
  change, end: the period end}: a credit for the unused time on the old price and quantity,
  a charge for the remaining time on the new ones, each ``amount * remaining_seconds /
  period_seconds`` rounded half away from zero (``pricing.prorated``). The next invoice of
  the customer (the renewal, see ``test_clocks.py``) takes them up;
- ``always_invoice``: the same items, then at once an invoice (``billing_reason``
  ``subscription_update``) for them and any other pending items, finalized and paid with the
  default payment method, with the usual events (``invoice.created``/``finalized``/``paid``
  or ``payment_failed``, ``charge.succeeded``...). A negative invoice charges nothing: its
  amount becomes customer credit (``invoices.py``);
- ``none``: nothing.

``proration_date`` (a timestamp within the current period) replaces "now". Not emulated:
``invoiceitem.created`` events, ``payment_behavior=error_if_incomplete`` refusing the change
when the invoice is declined, changing the billing interval (the period is kept), and
discounts on prorations. A trialing subscription gets no prorations (as its items are free).
"""

from __future__ import annotations

from typing import Any

from localstripe.errors import UserError
from localstripe.resources import Invoice, InvoiceItem, Product, Subscription, try_convert_to_int

from ..pricing import prorated
from .base import customer_time, now
from .invoices import billing_reason
from .subscriptions import item_amount

PRORATION_BEHAVIORS = (None, "create_prorations", "none", "always_invoice")

# item id -> (plan, quantity, tax rate ids)
_Priced = dict[str, tuple[Any, int, list[str]]]


def _priced_items(sub: Subscription) -> _Priced:
    return {
        si.id: (si.plan, si.quantity, [tr.id for tr in si.tax_rates or []])
        for si in sub.items._list
    }


def _product_name(plan: Any) -> str:
    product = Product._api_retrieve(plan.product) if plan.product else None
    return getattr(product, "name", None) or plan.id


def _proration_item(
    sub: Subscription,
    item_id: str,
    plan: Any,
    quantity: int,
    tax_rates: list[str],
    amount: int,
    at: int,
) -> InvoiceItem | None:
    if amount == 0:
        return None
    what = f"{quantity} \N{MULTIPLICATION SIGN} {_product_name(plan)}"
    description = ("Unused time on " if amount < 0 else "Remaining time on ") + what
    item = InvoiceItem(
        amount=amount,
        currency=plan.currency,
        customer=sub.customer,
        subscription=sub.id,
        plan=plan.id,
        period_start=at,
        period_end=sub.current_period_end,
        proration=True,
        description=description,
        tax_rates=tax_rates,
    )
    item.quantity = quantity
    item._subscription_item = item_id  # the line's parent.subscription_item_details
    return item


def prorations_create(sub: Subscription, before: _Priced, at: int) -> list[InvoiceItem]:
    """Pending proration items for what changed on ``sub`` since ``before``, as of ``at``."""
    start, end = sub.current_period_start, sub.current_period_end
    remaining = end - at
    if remaining <= 0 or sub.status not in ("active", "past_due"):
        return []
    after = _priced_items(sub)
    created = []
    for item_id in [*before, *(i for i in after if i not in before)]:
        old, new = before.get(item_id), after.get(item_id)
        if old is not None and new is not None and (old[0].id, old[1]) == (new[0].id, new[1]):
            continue
        for priced, sign in ((old, -1), (new, 1)):
            if priced is None:
                continue
            plan, quantity, tax_rates = priced
            amount = sign * prorated(item_amount(plan, quantity), remaining, end - start)
            item = _proration_item(sub, item_id, plan, quantity, tax_rates, amount, at)
            if item is not None:
                created.append(item)
    return created


def invoice_now(sub: Subscription) -> Invoice:
    """Invoice the customer's pending items for ``sub`` now, finalize it and pay it."""
    with billing_reason("subscription_update"):
        invoice = Invoice(
            customer=sub.customer,
            subscription=sub.id,
            items=[],
            default_tax_rates=[tr.id for tr in sub.default_tax_rates or []],
            date=now(),
        )
    return Invoice._api_pay_invoice(invoice.id)


_update_without_prorations: Any = None  # the original, captured by install()


def _update(
    self: Subscription,
    *args: Any,
    proration_behavior: Any = None,
    proration_date: Any = None,
    **kwargs: Any,
) -> None:
    proration_date = try_convert_to_int(proration_date)
    if proration_behavior not in PRORATION_BEHAVIORS:
        raise UserError(400, "Bad request")
    with customer_time(self.customer):
        at = now() if proration_date is None else proration_date
        if not isinstance(at, int) or not (
            self.current_period_start <= at <= self.current_period_end
        ):
            raise UserError(
                400,
                "proration_date must be within the current period",
                {"param": "proration_date"},
            )
        before = _priced_items(self)
        _update_without_prorations(self, *args, proration_behavior=proration_behavior, **kwargs)
        if proration_behavior == "none":
            return
        created = prorations_create(self, before, at)
        if proration_behavior == "always_invoice" and created:
            invoice_now(self)


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global _update_without_prorations
    _update_without_prorations = Subscription._update
    Subscription._update = _update
