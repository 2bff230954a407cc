"""dj-stripe signal receivers of marketplace orders: parse the event, call ``marketplace.orders``.

They run inside ``Event.process``'s transaction after the subscriptions receivers (which book
Stripe's fees on every charge); a receiver that raises rolls the event back and it is retried.
Connected in ``MarketplaceConfig.ready()``.

- ``payment_intent.succeeded``: an order's payment completed (after authentication, or the
  redelivery of one we booked synchronously): the order is paid, its funds held;
- ``charge.refunded``: refunds made on Stripe outside our console are booked;
- ``charge.dispute.created`` / ``.funds_withdrawn``: the order is disputed (nothing released);
- ``charge.dispute.closed``: a lost dispute is booked like a refund, clawed back after release.
"""

from __future__ import annotations

from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from marketplace import orders


def _object(event: Event) -> dict[str, Any]:
    return dict(event.data["object"])


def on_payment_intent_succeeded(sender: Any, event: Event, **kwargs: Any) -> None:
    orders.order_payment_succeeded(payment_intent=_object(event), occurred_at=event.created)


def on_charge_refunded(sender: Any, event: Event, **kwargs: Any) -> None:
    orders.order_charge_refunded(charge=_object(event), occurred_at=event.created)


def on_dispute_opened(sender: Any, event: Event, **kwargs: Any) -> None:
    orders.order_stripe_dispute_opened(dispute=_object(event), occurred_at=event.created)


def on_dispute_closed(sender: Any, event: Event, **kwargs: Any) -> None:
    orders.order_stripe_dispute_closed(dispute=_object(event), occurred_at=event.created)


RECEIVERS = {
    "payment_intent.succeeded": on_payment_intent_succeeded,
    "charge.refunded": on_charge_refunded,
    "charge.dispute.created": on_dispute_opened,
    "charge.dispute.funds_withdrawn": on_dispute_opened,
    "charge.dispute.closed": on_dispute_closed,
}


def connect() -> None:
    for event_type, receiver in RECEIVERS.items():
        WEBHOOK_SIGNALS[event_type].connect(
            receiver, sender=Event, dispatch_uid=f"marketplace.orders:{event_type}"
        )
