"""dj-stripe receivers of the content app's invoiced revenue (recurring licences and usage
royalties): parse the event, call a service. They run inside ``Event.process``'s transaction
after the subscriptions receivers (which book the invoice itself) and the marketplace's.
``connect()`` (from ``ContentConfig.ready()``) also registers the usage royalties as a charge
source of the monthly period close.

- ``invoice.paid``: a recurring licence's invoice activates/extends it and is split to the
  creators; a period invoice's content lines are split to the creators;
- ``customer.subscription.created|updated|deleted``: a recurring licence follows its
  subscription (cancellation or unpaid: it expires at the end of the period paid for);
- ``charge.refunded``: a refund of such an invoice reverses the refunded share of its splits;
- ``charge.dispute.*``: a dispute reverses the disputed share when funds are withdrawn and
  books it back when won.
"""

from __future__ import annotations

from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from content import recurring, royalties
from marketplace.period_close import charge_source_register


def _object(event: Event) -> dict[str, Any]:
    return dict(event.data["object"])


def on_invoice_paid(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice = _object(event)
    recurring.license_invoice_paid(invoice=invoice, occurred_at=event.created)
    royalties.royalty_invoice_paid(invoice=invoice, occurred_at=event.created)


def on_subscription_changed(sender: Any, event: Event, **kwargs: Any) -> None:
    recurring.license_subscription_changed(subscription=_object(event), occurred_at=event.created)


def on_charge_refunded(sender: Any, event: Event, **kwargs: Any) -> None:
    royalties.content_invoice_refunded(charge=_object(event), occurred_at=event.created)


def on_dispute_funds_withdrawn(sender: Any, event: Event, **kwargs: Any) -> None:
    royalties.content_invoice_disputed(dispute=_object(event), occurred_at=event.created)


def on_dispute_funds_reinstated(sender: Any, event: Event, **kwargs: Any) -> None:
    royalties.content_invoice_dispute_won(dispute=_object(event), occurred_at=event.created)


def on_dispute_closed(sender: Any, event: Event, **kwargs: Any) -> None:
    royalties.content_invoice_dispute_closed(dispute=_object(event), occurred_at=event.created)


RECEIVERS = {
    "invoice.paid": on_invoice_paid,
    "customer.subscription.created": on_subscription_changed,
    "customer.subscription.updated": on_subscription_changed,
    "customer.subscription.deleted": on_subscription_changed,
    "charge.refunded": on_charge_refunded,
    "charge.dispute.created": on_dispute_funds_withdrawn,
    "charge.dispute.funds_withdrawn": on_dispute_funds_withdrawn,  # an inquiry escalated
    "charge.dispute.funds_reinstated": on_dispute_funds_reinstated,
    "charge.dispute.closed": on_dispute_closed,
}


def connect() -> None:
    charge_source_register(royalties.CHARGE_SOURCE, royalties.ContentRoyalties())
    for event_type, receiver in RECEIVERS.items():
        WEBHOOK_SIGNALS[event_type].connect(
            receiver, sender=Event, dispatch_uid=f"content.billing:{event_type}"
        )
