"""dj-stripe signal receivers of the content app: parse the event, call a service.

They run inside ``Event.process``'s transaction after the subscriptions and affiliates
receivers (INSTALLED_APPS order); a receiver that raises rolls the event back and it is
retried. Connected in ``ContentConfig.ready()``.

- ``payment_intent.succeeded``: a licence purchase's licence becomes active, the sale split;
- ``charge.refunded``: the refunded share of the split is reversed, a full refund revokes;
- ``charge.dispute.closed`` (lost): the licence is revoked and the split reversed.
"""

from __future__ import annotations

from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from content import purchases


def _object(event: Event) -> dict[str, Any]:
    return dict(event.data["object"])


def on_payment_intent_succeeded(sender: Any, event: Event, **kwargs: Any) -> None:
    purchases.license_payment_succeeded(payment_intent=_object(event), occurred_at=event.created)


def on_charge_refunded(sender: Any, event: Event, **kwargs: Any) -> None:
    purchases.license_charge_refunded(charge=_object(event), occurred_at=event.created)


def on_dispute_closed(sender: Any, event: Event, **kwargs: Any) -> None:
    purchases.license_dispute_closed(dispute=_object(event), occurred_at=event.created)


RECEIVERS = {
    "payment_intent.succeeded": on_payment_intent_succeeded,
    "charge.refunded": on_charge_refunded,
    "charge.dispute.closed": on_dispute_closed,
}


def connect() -> None:
    for event_type, receiver in RECEIVERS.items():
        WEBHOOK_SIGNALS[event_type].connect(
            receiver, sender=Event, dispatch_uid=f"content:{event_type}"
        )
