"""dj-stripe signal receivers of the affiliates app: parse the event, call a service.

They run inside ``Event.process``'s transaction after the subscriptions receivers (which book
the invoice itself); a receiver that raises rolls the event back and it is retried. Connected
in ``AffiliatesConfig.ready()``.

- commissions: accrue on ``invoice.paid``, claw back on refunds and disputes, reinstate when
  a dispute is won;
- attribution from Stripe metadata (``referral_code`` on ``customer.created`` and
  ``customer.subscription.created``): the subscribe API attributes synchronously (code,
  cookie); these catch customers created elsewhere. An already referred customer keeps their
  referral.
"""

from __future__ import annotations

from typing import Any

from djstripe import models as djm
from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from affiliates.services import clawbacks, commissions
from affiliates.services.attribution import referral_attribute


def _object(event: Event) -> dict[str, Any]:
    return dict(event.data["object"])


def on_invoice_paid(sender: Any, event: Event, **kwargs: Any) -> None:
    commissions.commission_accrue(invoice=_object(event), occurred_at=event.created)


def on_charge_refunded(sender: Any, event: Event, **kwargs: Any) -> None:
    clawbacks.commission_refunds_record(charge=_object(event), occurred_at=event.created)


def on_dispute_created(sender: Any, event: Event, **kwargs: Any) -> None:
    clawbacks.commission_dispute_record(dispute=_object(event), occurred_at=event.created)


def on_dispute_funds_reinstated(sender: Any, event: Event, **kwargs: Any) -> None:
    clawbacks.commission_dispute_won_record(dispute=_object(event), occurred_at=event.created)


def on_dispute_closed(sender: Any, event: Event, **kwargs: Any) -> None:
    clawbacks.commission_dispute_closed_record(dispute=_object(event), occurred_at=event.created)


def _attribute(*, customer_id: Any, metadata: Any, event: Event) -> None:
    if isinstance(customer_id, dict):
        customer_id = customer_id.get("id")
    code = (metadata or {}).get("referral_code") if isinstance(metadata, dict) else None
    if not customer_id or not code:
        return
    user = None
    mirrored = djm.Customer.objects.filter(id=customer_id).select_related("subscriber").first()
    if mirrored is not None:
        user = mirrored.subscriber
    referral_attribute(
        stripe_customer_id=str(customer_id), user=user, metadata_code=str(code), at=event.created
    )


def on_customer_created(sender: Any, event: Event, **kwargs: Any) -> None:
    obj = event.data["object"]
    _attribute(customer_id=obj.get("id"), metadata=obj.get("metadata"), event=event)


def on_subscription_created(sender: Any, event: Event, **kwargs: Any) -> None:
    obj = event.data["object"]
    _attribute(customer_id=obj.get("customer"), metadata=obj.get("metadata"), event=event)


RECEIVERS = {
    "customer.created": on_customer_created,
    "customer.subscription.created": on_subscription_created,
    "invoice.paid": on_invoice_paid,
    "charge.refunded": on_charge_refunded,
    "charge.dispute.created": on_dispute_created,
    "charge.dispute.funds_withdrawn": on_dispute_created,  # an inquiry escalated
    "charge.dispute.funds_reinstated": on_dispute_funds_reinstated,
    "charge.dispute.closed": on_dispute_closed,
}


def connect() -> None:
    for event_type, receiver in RECEIVERS.items():
        WEBHOOK_SIGNALS[event_type].connect(
            receiver, sender=Event, dispatch_uid=f"affiliates:{event_type}"
        )
