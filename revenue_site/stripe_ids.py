"""Reading Stripe payloads, and the API key calls to Stripe use, shared by every app."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from djstripe.settings import djstripe_settings


def stripe_api_key(livemode: bool | None = None) -> str:
    """The secret key for a call to Stripe: dj-stripe's default for ``livemode`` (None: the
    configured mode). Every call passes it; nothing sets ``stripe.api_key`` globally."""
    return str(djstripe_settings.get_default_api_key(livemode))


def stripe_id(value: Any) -> str:
    """A Stripe id from a field that may hold the id or the expanded object ("" if absent)."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def dispute_is_inquiry(dispute: Mapping[str, Any]) -> bool:
    """Whether a Stripe dispute is an inquiry (status ``warning_*``): no funds are withdrawn.

    An inquiry that escalates becomes a chargeback (status ``needs_response``) and Stripe sends
    ``charge.dispute.funds_withdrawn``; only then does money leave.
    """
    return str(dispute.get("status") or "").startswith("warning_")
