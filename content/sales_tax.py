"""Sales tax / VAT on one-time licence sales (PaymentIntents: no Stripe invoice computes it).

The rate is configured per buyer country (``CONTENT_TAX_RATES``, percent, e.g.
``{"DE": Decimal(19)}``); a country not listed, or an unknown one, pays no tax. The buyer's
country is their payment method's billing address, else the country that issued its card
(the evidence Stripe itself falls back to for cards).

- prices exclusive of tax (``CONTENT_PRICES_INCLUDE_TAX`` off, the default): the buyer pays the
  price plus ``price * rate / 100``;
- prices inclusive of tax (on): the buyer pays the price, of which ``price * rate / (100 +
  rate)`` is tax (Stripe's formula for inclusive rates, as ``devstripe/tax.py`` computes it).

Both round half up to whole minor units, exactly (integer fractions, ``revenue_site.money``).
The sale books the tax to ``liability.sales_tax_payable`` and splits only the rest
(``content.purchases``), as invoices book theirs (``subscriptions.services.invoice_postings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from revenue_site.money import allocate, apply_rate

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class SaleTax:
    """The tax on one sale (minor units): ``total`` is charged, ``net`` is split."""

    country: str  # ISO 3166-1 alpha-2, upper case; "" when unknown
    rate: Decimal  # percent; 0 without tax
    inclusive: bool
    net: int
    tax: int

    @property
    def total(self) -> int:
        return self.net + self.tax

    def as_metadata(self) -> dict[str, str]:
        """What the PaymentIntent carries (``metadata``), for the receipt and reconciliation."""
        return {
            "tax_country": self.country,
            "tax_rate": str(self.rate),
            "tax_amount": str(self.tax),
            "tax_behavior": "inclusive" if self.inclusive else "exclusive",
        }


def tax_rate_for(country: str) -> Decimal:
    """The configured rate (%) for ``country`` (ISO alpha-2, any case); 0 when not listed."""
    rates: Mapping[str, Decimal] = settings.CONTENT_TAX_RATES
    return rates.get((country or "").strip().upper(), Decimal(0))


def sale_tax(*, price: int, country: str, inclusive: bool | None = None) -> SaleTax:
    """The tax on a sale at ``price`` (minor units) to a buyer in ``country``.

    ``inclusive`` defaults to ``CONTENT_PRICES_INCLUDE_TAX``. ``net + tax`` is what is charged:
    ``price + tax`` when the tax is added, ``price`` when it is included.
    """
    if inclusive is None:
        inclusive = bool(settings.CONTENT_PRICES_INCLUDE_TAX)
    country = (country or "").strip().upper()
    rate = tax_rate_for(country)
    if rate <= 0 or price <= 0:
        return SaleTax(country=country, rate=Decimal(0), inclusive=inclusive, net=price, tax=0)
    if inclusive:
        # price * rate / (100 + rate), half up: splitting the price rate : 100 by the largest
        # remainder gives exactly that (of two parts, the one past the half takes the unit;
        # an exact half goes to the first, the tax).
        tax = allocate(price, [rate, HUNDRED])[0]
        return SaleTax(country=country, rate=rate, inclusive=True, net=price - tax, tax=tax)
    tax = apply_rate(price, rate / HUNDRED)
    return SaleTax(country=country, rate=rate, inclusive=False, net=price, tax=tax)


def payment_method_country(payment_method: Mapping[str, Any]) -> str:
    """The buyer's country from a Stripe PaymentMethod: its billing address, else its card's
    issuing country; "" when it names neither."""
    billing = payment_method.get("billing_details") or {}
    address = billing.get("address") or {}
    card = payment_method.get("card") or {}
    return str(address.get("country") or card.get("country") or "").upper()
