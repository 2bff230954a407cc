"""The chart of system accounts: the platform's own accounts, by code.

Payee accounts (one payable per affiliate, creator or provider) are not listed here; they are
created on demand by ``ledger.services.account_for_payee``. To add a system account, add it
here; ``system_account(code)`` creates it on first use (migration 0002 seeds the initial set).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from ledger.models import Account


class SystemAccount(StrEnum):
    """Codes of the platform's accounts. Pass these to ``system_account(code)``."""

    # Platform revenue per stream (credit balance).
    REVENUE_SUBSCRIPTIONS = "revenue.subscriptions"
    REVENUE_AFFILIATES = "revenue.affiliates"
    REVENUE_CONTENT = "revenue.content"
    REVENUE_MARKETPLACE = "revenue.marketplace"
    REVENUE_API_USAGE = "revenue.api_usage"
    # Refunds given back to customers: contra-revenue (debit balance).
    REFUNDS = "revenue.refunds"
    # Money Stripe holds for us: charges land here, fees, refunds and payouts leave from here.
    STRIPE_CLEARING = "asset.stripe_clearing"
    # Our bank account (Stripe payouts to us, payee payouts made by bank transfer / CSV export).
    BANK = "asset.bank"
    # Stripe's processing fees.
    STRIPE_FEES = "expense.stripe_fees"
    # Affiliate commissions (the other side is the affiliate's payable account).
    COMMISSION_EXPENSE = "expense.commissions"
    # Creators' and providers' shares when booked as platform expense rather than pass-through.
    CREATOR_SHARE_EXPENSE = "expense.creator_share"
    PROVIDER_SHARE_EXPENSE = "expense.provider_share"
    # Lost disputes (chargebacks) and their fees.
    DISPUTE_LOSSES = "expense.disputes"
    # Payee payouts sent (Stripe Connect transfer or bank batch) but not yet settled.
    PAYOUTS_IN_TRANSIT = "liability.payouts_in_transit"
    # Marketplace orders paid by buyers and not yet released to providers or refunded.
    LIABILITY_MARKETPLACE_HELD = "liability.marketplace_held"
    # Sales tax / VAT collected on invoices, owed to tax authorities (credit balance).
    SALES_TAX_PAYABLE = "liability.sales_tax_payable"
    # Opening balances and manual corrections agreed by finance.
    OPENING_BALANCES = "equity.opening_balances"


class AccountSpec(NamedTuple):
    name: str
    type: Account.Type


SYSTEM_ACCOUNTS: dict[SystemAccount, AccountSpec] = {
    SystemAccount.REVENUE_SUBSCRIPTIONS: AccountSpec(
        "Platform revenue: subscriptions", Account.Type.REVENUE
    ),
    SystemAccount.REVENUE_AFFILIATES: AccountSpec(
        "Platform revenue: affiliates", Account.Type.REVENUE
    ),
    SystemAccount.REVENUE_CONTENT: AccountSpec("Platform revenue: content", Account.Type.REVENUE),
    SystemAccount.REVENUE_MARKETPLACE: AccountSpec(
        "Platform revenue: marketplace", Account.Type.REVENUE
    ),
    SystemAccount.REVENUE_API_USAGE: AccountSpec(
        "Platform revenue: API usage", Account.Type.REVENUE
    ),
    SystemAccount.REFUNDS: AccountSpec("Refunds (contra-revenue)", Account.Type.REVENUE),
    SystemAccount.STRIPE_CLEARING: AccountSpec("Stripe clearing", Account.Type.ASSET),
    SystemAccount.BANK: AccountSpec("Bank", Account.Type.ASSET),
    SystemAccount.STRIPE_FEES: AccountSpec("Stripe fees", Account.Type.EXPENSE),
    SystemAccount.COMMISSION_EXPENSE: AccountSpec("Affiliate commissions", Account.Type.EXPENSE),
    SystemAccount.CREATOR_SHARE_EXPENSE: AccountSpec("Creator shares", Account.Type.EXPENSE),
    SystemAccount.PROVIDER_SHARE_EXPENSE: AccountSpec("Provider shares", Account.Type.EXPENSE),
    SystemAccount.DISPUTE_LOSSES: AccountSpec("Dispute losses", Account.Type.EXPENSE),
    SystemAccount.PAYOUTS_IN_TRANSIT: AccountSpec("Payouts in transit", Account.Type.LIABILITY),
    SystemAccount.LIABILITY_MARKETPLACE_HELD: AccountSpec(
        "Marketplace funds held", Account.Type.LIABILITY
    ),
    SystemAccount.SALES_TAX_PAYABLE: AccountSpec("Sales tax payable", Account.Type.LIABILITY),
    SystemAccount.OPENING_BALANCES: AccountSpec("Opening balances", Account.Type.EQUITY),
}


def payee_account_code(payee_type: str, payee_id: int) -> str:
    """``payable.affiliate.42``: the code of a payee's payable account."""
    return f"payable.{Account.PayeeType(payee_type).value}.{payee_id}"
