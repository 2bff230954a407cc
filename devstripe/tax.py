"""Tax rates on invoices, as Stripe computes them (localstripe 1.15 gets inclusive rates wrong).

localstripe already takes ``TaxRate`` objects, ``default_tax_rates`` on subscriptions and
invoices and ``tax_rates`` on items, and reports ``tax`` and ``total_tax_amounts``. Here:

- a rate's amount is exact (localstripe multiplies floats), rounded half up per line and rate:
  exclusive ``amount * p / 100``; inclusive ``amount * p / (100 + p)``, the tax already inside
  the line amount (Stripe's formula);
- an inclusive tax is not added to the invoice ``total`` (localstripe adds every tax), so a
  1200 price with 20 % inclusive VAT charges 1200, of which 200 is tax;
- invoices carry what API versions since 2025 send instead of ``tax`` /
  ``total_tax_amounts`` (which ``resources/invoices.py`` leaves out of the export):
  ``total_taxes`` (``amount``, ``tax_behavior``, ``tax_rate_details``, ``taxable_amount``),
  ``total_excluding_tax`` and ``subtotal_excluding_tax``; lines carry ``taxes`` instead of
  ``tax_amounts``. localstripe's own ``tax`` / ``total_tax_amounts`` stay inside the fake.

Importing this module patches localstripe (after ``resources``, whose invoice fix-up it wraps).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from localstripe.resources import Invoice, InvoiceLineItem, TaxRate

from . import resources  # noqa: F401  (its invoice fix-ups first)


def _tax_amount(self: TaxRate, amount: int) -> dict[str, Any]:
    rate = Decimal(str(self.percentage))
    base = Decimal(100) + rate if self.inclusive else Decimal(100)
    tax = (Decimal(amount) * rate / base).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return {"amount": int(tax), "inclusive": self.inclusive, "tax_rate": self.id}


def _exclusive_tax(invoice: Invoice) -> int:
    return sum(t["amount"] for t in invoice.total_tax_amounts if not t["inclusive"])


def _inclusive_tax(invoice: Invoice) -> int:
    return sum(t["amount"] for t in invoice.total_tax_amounts if t["inclusive"])


def _total(self: Invoice) -> int:
    return max(0, self.subtotal + _exclusive_tax(self) - self.starting_balance)


def _line_taxes(line_amount: int, tax_amounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    inclusive = sum(t["amount"] for t in tax_amounts if t["inclusive"])
    return [
        {
            "amount": t["amount"],
            "tax_behavior": "inclusive" if t["inclusive"] else "exclusive",
            "tax_rate_details": {"tax_rate": t["tax_rate"]},
            "taxability_reason": "standard_rated",
            "taxable_amount": line_amount - inclusive,
            "type": "tax_rate_details",
        }
        for t in tax_amounts
    ]


def _line_tax_amounts(invoice: Invoice, line: InvoiceLineItem) -> list[dict[str, Any]]:
    # The rule of localstripe's Invoice.total_tax_amounts: item rates, else the defaults.
    if line.tax_rates:
        return list(line.tax_amounts)
    return [tr._tax_amount(line.amount) for tr in invoice.default_tax_rates or []]


_prev_invoice_fixup: Any = None  # the original, captured by install()
_prev_line_fixup: Any = None  # the original, captured by install()


def _invoice_fixup(self: Invoice, obj: dict[str, Any]) -> None:
    if _prev_invoice_fixup is not None:
        _prev_invoice_fixup(self, obj)
    taxes = [
        tax
        for line in self.lines._list
        for tax in _line_taxes(line.amount, _line_tax_amounts(self, line))
    ]
    obj["total_taxes"] = taxes
    obj["total_excluding_tax"] = obj["total"] - _exclusive_tax(self) - _inclusive_tax(self)
    obj["subtotal_excluding_tax"] = obj["subtotal"] - _inclusive_tax(self)
    for line_obj, line in zip(obj["lines"]["data"], self.lines._list, strict=False):
        line_obj["taxes"] = _line_taxes(line.amount, _line_tax_amounts(self, line))


def _line_fixup(self: InvoiceLineItem, obj: dict[str, Any]) -> None:
    if _prev_line_fixup is not None:
        _prev_line_fixup(self, obj)
    obj.setdefault("taxes", _line_taxes(self.amount, list(self.tax_amounts)))


def install() -> None:
    """Apply this module's changes to localstripe (``devstripe.install`` calls it once,
    in order)."""
    global _prev_invoice_fixup, _prev_line_fixup
    _prev_invoice_fixup = getattr(Invoice, "_devstripe_fixup", None)
    _prev_line_fixup = getattr(InvoiceLineItem, "_devstripe_fixup", None)
    TaxRate._tax_amount = _tax_amount
    Invoice.total = property(_total)
    Invoice._devstripe_fixup = _invoice_fixup
    InvoiceLineItem._devstripe_fixup = _line_fixup
