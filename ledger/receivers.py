"""dj-stripe signal receivers of the ledger: parse the event, call a service.

- ``account.updated``: a connected account's onboarding state (charges / payouts enabled,
  details submitted) reaches every payee profile paid through it, unless a newer state is
  already recorded (``ledger.payees.payee_connect_account_sync``).

Connected in ``LedgerConfig.ready()``; they run inside the inbox's transaction, after
dj-stripe's own handler has synced its mirror ``Account`` row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from ledger.payees import payee_connect_account_sync


def _created(event: Event) -> datetime:
    created = event.created
    if isinstance(created, datetime):
        return created
    return datetime.fromtimestamp(int(created), tz=UTC)


def on_account_updated(sender: Any, event: Event, **kwargs: Any) -> None:
    payee_connect_account_sync(account=dict(event.data["object"]), as_of=_created(event))


RECEIVERS = {"account.updated": on_account_updated}


def connect() -> None:
    for event_type, receiver in RECEIVERS.items():
        WEBHOOK_SIGNALS[event_type].connect(
            receiver, sender=Event, dispatch_uid=f"ledger:{event_type}"
        )
