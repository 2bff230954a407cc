"""dj-stripe signal receivers of marketplace orders: parse the event, call ``marketplace.orders``.

They run inside ``Event.process``'s transaction after the subscriptions receivers (which book
Stripe's fees on every charge); a receiver that raises rolls the event back and it is retried.
Connected in ``MarketplaceConfig.ready()``.

- ``payment_intent.succeeded``: an order's payment completed (after authentication, or the
  redelivery of one we booked synchronously): the order is paid, its funds held;
- ``charge.refunded``: refunds made on Stripe outside our console are booked;
- ``charge.dispute.created`` / ``.funds_withdrawn``: the disputed funds are booked back to
  Stripe (after a release: clawed back, from the connected account when transferred) and the
  order is disputed (nothing released or refunded while it is open);
- ``charge.dispute.funds_reinstated`` / ``.closed`` won: booked back, the order returns to the
  state it had; ``.closed`` lost: the reversals stand, an order that lost all it held closes.
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


def on_dispute_funds_reinstated(sender: Any, event: Event, **kwargs: Any) -> None:
    orders.order_stripe_dispute_won(dispute=_object(event), occurred_at=event.created)


def on_dispute_closed(sender: Any, event: Event, **kwargs: Any) -> None:
    orders.order_stripe_dispute_closed(dispute=_object(event), occurred_at=event.created)


RECEIVERS = {
    "payment_intent.succeeded": on_payment_intent_succeeded,
    "charge.refunded": on_charge_refunded,
    "charge.dispute.created": on_dispute_opened,
    "charge.dispute.funds_withdrawn": on_dispute_opened,
    "charge.dispute.funds_reinstated": on_dispute_funds_reinstated,
    "charge.dispute.closed": on_dispute_closed,
}


def connect() -> None:
    for event_type, receiver in RECEIVERS.items():
        WEBHOOK_SIGNALS[event_type].connect(
            receiver, sender=Event, dispatch_uid=f"marketplace.orders:{event_type}"
        )
