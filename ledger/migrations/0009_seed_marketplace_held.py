"""Create the account holding marketplace order payments until release (marketplace orders).

Copied, not imported from ``ledger.chart``, for the reason 0002 gives.
"""

from django.db import migrations
from django.utils import timezone

SYSTEM_ACCOUNTS = [
    ("liability.marketplace_held", "Marketplace funds held", "liability"),
]


def seed(apps, schema_editor):
    Account = apps.get_model("ledger", "Account")
    now = timezone.now()
    for code, name, account_type in SYSTEM_ACCOUNTS:
        Account.objects.using(schema_editor.connection.alias).get_or_create(
            code=code, defaults={"name": name, "type": account_type, "created_at": now}
        )


class Migration(migrations.Migration):
    dependencies = [("ledger", "0008_payee_connect_status")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
