"""dj-stripe signal receivers: parse the event, call a service (subscriptions.services).

dj-stripe fires these from ``Event.process`` inside the transaction that syncs the mirror, after
its own handlers, so the mirror already holds the object; a receiver that raises rolls the
whole event back and it is retried. Connected in ``SubscriptionsConfig.ready()``; an event
type may have several receivers (``invoice_postings`` and ``stripe_fees``), called in the order
listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from subscriptions.services import (
    bank_payouts,
    catalog_pull,
    dunning,
    invoice_payments,
    invoice_postings,
    stripe_fees,
    subscription_state,
)


def _object(event: Event) -> dict[str, Any]:
    return dict(event.data["object"])


def on_invoice_paid(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice = _object(event)
    invoice_payments.invoice_payments_record_from_invoice(invoice=invoice)
    invoice_postings.invoice_paid_record(invoice=invoice, occurred_at=event.created)


def on_invoice_payment_paid(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice_payments.invoice_payment_record(invoice_payment=_object(event))


def on_invoice_payment_failed(sender: Any, event: Event, **kwargs: Any) -> None:
    dunning.invoice_payment_failed_record(invoice=_object(event), occurred_at=event.created)


def on_charge_refunded(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice_postings.charge_refund_record(charge=_object(event), occurred_at=event.created)


def on_dispute_created(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice_postings.dispute_record(dispute=_object(event), occurred_at=event.created)


def on_dispute_funds_reinstated(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice_postings.dispute_won_record(dispute=_object(event), occurred_at=event.created)


def on_dispute_closed(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice_postings.dispute_closed_record(dispute=_object(event), occurred_at=event.created)


def on_charge_succeeded(sender: Any, event: Event, **kwargs: Any) -> None:
    stripe_fees.charge_fee_record(charge=_object(event), occurred_at=event.created)


def on_dispute_balance_changed(sender: Any, event: Event, **kwargs: Any) -> None:
    stripe_fees.dispute_fees_record(dispute=_object(event), occurred_at=event.created)


def _connected_account(event: Event) -> str:
    """The connected account an event comes from (through the Connect webhook endpoint), or ""
    for the platform's own events."""
    return str((event.stripe_data or {}).get("account") or "")


def on_payout_paid(sender: Any, event: Event, **kwargs: Any) -> None:
    if _connected_account(event):
        return  # a connected account paid out its own balance: not our money
    bank_payouts.payout_paid_record(payout=_object(event), occurred_at=event.created)


def on_payout_failed(sender: Any, event: Event, **kwargs: Any) -> None:
    if _connected_account(event):
        return
    bank_payouts.payout_failed_record(payout=_object(event), occurred_at=event.created)


def on_subscription_changed(sender: Any, event: Event, **kwargs: Any) -> None:
    subscription_state.subscription_state_apply(
        subscription=_object(event), event_id=event.id, occurred_at=event.created
    )


def on_product_changed(sender: Any, event: Event, **kwargs: Any) -> None:
    catalog_pull.plan_pull_current(product_id=_object(event)["id"])


def on_product_deleted(sender: Any, event: Event, **kwargs: Any) -> None:
    catalog_pull.plan_pull_deleted(product_id=_object(event)["id"])


def on_price_changed(sender: Any, event: Event, **kwargs: Any) -> None:
    catalog_pull.plan_price_pull_current(price_id=_object(event)["id"])


def on_price_deleted(sender: Any, event: Event, **kwargs: Any) -> None:
    catalog_pull.plan_price_pull_deleted(price_id=_object(event)["id"])


Receiver = Callable[..., None]

RECEIVERS: dict[str, tuple[Receiver, ...]] = {
    "invoice.paid": (on_invoice_paid,),
    # which invoice a payment intent paid (refunds and disputes find their invoice by it)
    "invoice_payment.paid": (on_invoice_payment_paid,),
    "invoice.payment_failed": (on_invoice_payment_failed,),
    "charge.succeeded": (on_charge_succeeded,),
    "charge.refunded": (on_charge_refunded,),
    "charge.dispute.created": (on_dispute_created, on_dispute_balance_changed),
    # an inquiry escalated
    "charge.dispute.funds_withdrawn": (on_dispute_created, on_dispute_balance_changed),
    "charge.dispute.funds_reinstated": (on_dispute_funds_reinstated, on_dispute_balance_changed),
    "charge.dispute.closed": (on_dispute_closed, on_dispute_balance_changed),
    "customer.subscription.created": (on_subscription_changed,),
    "customer.subscription.updated": (on_subscription_changed,),
    "customer.subscription.deleted": (on_subscription_changed,),
    # payout.created, .updated and .canceled move nothing on our side (bank_payouts.py)
    "payout.paid": (on_payout_paid,),
    "payout.failed": (on_payout_failed,),
    # The catalog may start in Stripe: products and prices made there become plans and prices.
    "product.created": (on_product_changed,),
    "product.updated": (on_product_changed,),
    "product.deleted": (on_product_deleted,),
    "price.created": (on_price_changed,),
    "price.updated": (on_price_changed,),
    "price.deleted": (on_price_deleted,),
}


def _dispatch_uid(event_type: str, position: int) -> str:
    return f"subscriptions.receivers:{event_type}:{position}"


def connect() -> None:
    for event_type, receivers in RECEIVERS.items():
        for position, receiver in enumerate(receivers):
            WEBHOOK_SIGNALS[event_type].connect(
                receiver, sender=Event, dispatch_uid=_dispatch_uid(event_type, position)
            )
