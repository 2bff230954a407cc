"""Create the platform's system accounts (ledger.chart as of this migration).

The list is copied here, not imported, so later chart changes do not rewrite history;
``ledger.services.system_account`` creates accounts added to the chart afterwards.
"""

from django.db import migrations
from django.utils import timezone

SYSTEM_ACCOUNTS = [
    ("revenue.subscriptions", "Platform revenue: subscriptions", "revenue"),
    ("revenue.affiliates", "Platform revenue: affiliates", "revenue"),
    ("revenue.content", "Platform revenue: content", "revenue"),
    ("revenue.marketplace", "Platform revenue: marketplace", "revenue"),
    ("revenue.refunds", "Refunds (contra-revenue)", "revenue"),
    ("asset.stripe_clearing", "Stripe clearing", "asset"),
    ("asset.bank", "Bank", "asset"),
    ("expense.stripe_fees", "Stripe fees", "expense"),
    ("expense.commissions", "Affiliate commissions", "expense"),
    ("expense.creator_share", "Creator shares", "expense"),
    ("expense.provider_share", "Provider shares", "expense"),
    ("expense.disputes", "Dispute losses", "expense"),
    ("liability.payouts_in_transit", "Payouts in transit", "liability"),
    ("equity.opening_balances", "Opening balances", "equity"),
]


def seed(apps, schema_editor):
    Account = apps.get_model("ledger", "Account")
    now = timezone.now()
    for code, name, account_type in SYSTEM_ACCOUNTS:
        Account.objects.using(schema_editor.connection.alias).get_or_create(
            code=code, defaults={"name": name, "type": account_type, "created_at": now}
        )


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
