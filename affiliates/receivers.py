"""dj-stripe signal receivers of the affiliates app: parse the event, call a service.

They run inside ``Event.process``'s transaction after the subscriptions receivers (which book
the invoice itself); a receiver that raises rolls the event back and it is retried. Connected
in ``AffiliatesConfig.ready()``, which also plugs affiliates into the payout engine.
"""

from __future__ import annotations

from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from affiliates.services import clawbacks, commissions
from ledger.payouts import PayeeType, payee_type_register


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


RECEIVERS = {
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
            receiver, sender=Event, dispatch_uid=f"affiliates.commissions:{event_type}"
        )
    payee_type_register(
        commissions.PAYEE_TYPE,
        PayeeType(
            withheld=commissions.affiliate_withheld,
            minimum=commissions.affiliate_minimum,
            on_paid=commissions.affiliate_payout_paid,
        ),
    )
