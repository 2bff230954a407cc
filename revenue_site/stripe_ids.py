"""Reading Stripe payloads shared by every app's receivers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def stripe_id(value: Any) -> str:
    """A Stripe id from a field that may hold the id or the expanded object ("" if absent)."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")
