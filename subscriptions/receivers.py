"""dj-stripe signal receivers: parse the event, call a service (subscriptions.services.effects).

dj-stripe fires these from ``Event.process`` inside the transaction that syncs the mirror, after
its own handlers, so the mirror already holds the object; a receiver that raises rolls the
whole event back and it is retried. Connected in ``SubscriptionsConfig.ready()``.
"""

from __future__ import annotations

from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from subscriptions.services import effects


def _object(event: Event) -> dict[str, Any]:
    return dict(event.data["object"])


def on_invoice_paid(sender: Any, event: Event, **kwargs: Any) -> None:
    effects.invoice_paid_record(invoice=_object(event), occurred_at=event.created)


def on_invoice_payment_failed(sender: Any, event: Event, **kwargs: Any) -> None:
    effects.invoice_payment_failed_record(invoice=_object(event), occurred_at=event.created)


def on_charge_refunded(sender: Any, event: Event, **kwargs: Any) -> None:
    effects.charge_refund_record(charge=_object(event), occurred_at=event.created)


def on_dispute_created(sender: Any, event: Event, **kwargs: Any) -> None:
    effects.dispute_record(dispute=_object(event), occurred_at=event.created)


def on_dispute_funds_reinstated(sender: Any, event: Event, **kwargs: Any) -> None:
    effects.dispute_won_record(dispute=_object(event), occurred_at=event.created)


def on_dispute_closed(sender: Any, event: Event, **kwargs: Any) -> None:
    effects.dispute_closed_record(dispute=_object(event), occurred_at=event.created)


def on_subscription_changed(sender: Any, event: Event, **kwargs: Any) -> None:
    effects.subscription_state_apply(
        subscription=_object(event), event_id=event.id, occurred_at=event.created
    )


RECEIVERS = {
    "invoice.paid": on_invoice_paid,
    "invoice.payment_failed": on_invoice_payment_failed,
    "charge.refunded": on_charge_refunded,
    "charge.dispute.created": on_dispute_created,
    "charge.dispute.funds_withdrawn": on_dispute_created,  # an inquiry escalated
    "charge.dispute.funds_reinstated": on_dispute_funds_reinstated,
    "charge.dispute.closed": on_dispute_closed,
    "customer.subscription.created": on_subscription_changed,
    "customer.subscription.updated": on_subscription_changed,
    "customer.subscription.deleted": on_subscription_changed,
}


def connect() -> None:
    for event_type, receiver in RECEIVERS.items():
        WEBHOOK_SIGNALS[event_type].connect(
            receiver, sender=Event, dispatch_uid=f"subscriptions.effects:{event_type}"
        )
