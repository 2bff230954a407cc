"""Top payees on the staff dashboard: the affiliates, creators and providers who earned most in
a period, per currency (from `analytics.revenue.top_payees`, which reads the ledger)."""

from __future__ import annotations

from datetime import date
from typing import Any

PAYEE_TYPES = ("affiliate", "creator", "provider")


def top_payees_by_type(
    *, start: date, end: date, currency: str, limit: int = 10
) -> dict[str, list[Any]]:
    """{payee type: its top ``limit`` payees by earnings in [start, end]}, in PAYEE_TYPES order."""
    from analytics.revenue import top_payees

    return {
        payee_type: list(
            top_payees(payee_type=payee_type, start=start, end=end, currency=currency, limit=limit)
        )
        for payee_type in PAYEE_TYPES
    }
