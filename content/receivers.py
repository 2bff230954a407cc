"""dj-stripe signal receivers of the content app: parse the event, call a service.

They run inside ``Event.process``'s transaction after the subscriptions and affiliates
receivers (INSTALLED_APPS order); a receiver that raises rolls the event back and it is
retried. Connected in ``ContentConfig.ready()``.

- ``payment_intent.succeeded``: a licence purchase's licence becomes active, the commission
  accrues, the sale is split;
- ``payment_intent.payment_failed`` / ``payment_intent.canceled``: the pending licence is
  dropped (an exclusive item is free again);
- ``charge.refunded``: the refunded share of the split and commission is reversed, a full
  refund revokes;
- ``charge.dispute.created`` / ``charge.dispute.funds_withdrawn`` (an inquiry escalated): the
  licence is suspended, the disputed share reversed;
- ``charge.dispute.funds_reinstated`` / ``charge.dispute.closed``: won reinstates and books
  back, lost revokes.
"""

from __future__ import annotations

from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from content import purchases, sale_reversals


def _object(event: Event) -> dict[str, Any]:
    return dict(event.data["object"])


def on_payment_intent_succeeded(sender: Any, event: Event, **kwargs: Any) -> None:
    purchases.license_payment_succeeded(payment_intent=_object(event), occurred_at=event.created)


def on_payment_intent_failed(sender: Any, event: Event, **kwargs: Any) -> None:
    purchases.license_payment_failed(payment_intent=_object(event), occurred_at=event.created)


def on_charge_refunded(sender: Any, event: Event, **kwargs: Any) -> None:
    sale_reversals.license_charge_refunded(charge=_object(event), occurred_at=event.created)


def on_dispute_opened(sender: Any, event: Event, **kwargs: Any) -> None:
    sale_reversals.license_dispute_opened(dispute=_object(event), occurred_at=event.created)


def on_dispute_funds_reinstated(sender: Any, event: Event, **kwargs: Any) -> None:
    sale_reversals.license_dispute_won(dispute=_object(event), occurred_at=event.created)


def on_dispute_closed(sender: Any, event: Event, **kwargs: Any) -> None:
    sale_reversals.license_dispute_closed(dispute=_object(event), occurred_at=event.created)


RECEIVERS = {
    "payment_intent.succeeded": on_payment_intent_succeeded,
    "payment_intent.payment_failed": on_payment_intent_failed,
    "payment_intent.canceled": on_payment_intent_failed,
    "charge.refunded": on_charge_refunded,
    "charge.dispute.created": on_dispute_opened,
    "charge.dispute.funds_withdrawn": on_dispute_opened,
    "charge.dispute.funds_reinstated": on_dispute_funds_reinstated,
    "charge.dispute.closed": on_dispute_closed,
}


def connect() -> None:
    for event_type, receiver in RECEIVERS.items():
        WEBHOOK_SIGNALS[event_type].connect(
            receiver, sender=Event, dispatch_uid=f"content:{event_type}"
        )
