"""dj-stripe receivers for attribution from Stripe metadata (customer.created,
customer.subscription.created): parse the event and call ``referral_attribute``.

The subscribe API attributes synchronously (code, cookie); these catch customers created
elsewhere. An already referred customer keeps their referral. Connected in
``AffiliatesConfig.ready()``.
"""

from __future__ import annotations

from typing import Any

from djstripe import models as djm
from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from affiliates.services.attribution import referral_attribute


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
}


def connect() -> None:
    for event_type, receiver in RECEIVERS.items():
        WEBHOOK_SIGNALS[event_type].connect(
            receiver, sender=Event, dispatch_uid=f"affiliates.attribution:{event_type}"
        )
