"""Reading Stripe payloads (objects as events and the API return them), for every app.

Each reader here is the one place its field is interpreted: ids that may come expanded,
Stripe's Unix timestamps, an invoice's tax and payment time, a dispute's kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def stripe_id(value: Any) -> str:
    """A Stripe id from a field that may hold the id or the expanded object ("" if absent)."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def stripe_time(value: Any) -> datetime | None:
    """A Stripe timestamp (seconds since the epoch) as an aware UTC datetime; None if absent."""
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def invoice_tax(invoice: Mapping[str, Any]) -> int:
    """The tax an invoice reports, in minor units: the sum of its ``total_taxes`` amounts.

    Inclusive and exclusive tax alike (both are inside ``amount_paid``); 0 without tax.
    """
    return sum(int(row.get("amount") or 0) for row in invoice.get("total_taxes") or [])


def invoice_paid_at(invoice: Mapping[str, Any]) -> datetime | None:
    """When the invoice was paid (``status_transitions.paid_at``); None if not (yet) known."""
    return stripe_time((invoice.get("status_transitions") or {}).get("paid_at"))


def dispute_is_inquiry(dispute: Mapping[str, Any]) -> bool:
    """Whether a Stripe dispute is an inquiry (status ``warning_*``): no funds are withdrawn.

    An inquiry that escalates becomes a chargeback (status ``needs_response``) and Stripe sends
    ``charge.dispute.funds_withdrawn``; only then does money leave.
    """
    return str(dispute.get("status") or "").startswith("warning_")
