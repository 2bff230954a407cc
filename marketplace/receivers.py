"""dj-stripe signal receivers of API billing: parse the event, call a service.

They run inside ``Event.process``'s transaction after the subscriptions receivers (which book
the invoice's revenue). Connected in ``MarketplaceConfig.ready()``.

- ``invoice.paid``: a usage invoice's period close becomes PAID.
"""

from __future__ import annotations

from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from marketplace import period_close


def on_invoice_paid(sender: Any, event: Event, **kwargs: Any) -> None:
    period_close.usage_invoice_paid(invoice=dict(event.data["object"]))


RECEIVERS = {"invoice.paid": on_invoice_paid}


def connect() -> None:
    for event_type, receiver in RECEIVERS.items():
        WEBHOOK_SIGNALS[event_type].connect(
            receiver, sender=Event, dispatch_uid=f"marketplace:{event_type}"
        )
