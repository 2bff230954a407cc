"""On PostgreSQL, an index on the Stripe mirror's ``trial_start`` (inside its JSON), which
``analytics.reports.trial_conversion`` filters by: without it every dashboard load scanned all
subscriptions (0.9 s at a million). dj-stripe owns the table, so the index is made here."""

from django.db import migrations

INDEX = "analytics_djstripe_sub_trial_start_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON djstripe_subscription "
            "((stripe_data -> 'trial_start'))"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0003_cohort_changes"),
        ("djstripe", "0003_2_11"),
    ]

    operations = [migrations.RunPython(create, drop)]
