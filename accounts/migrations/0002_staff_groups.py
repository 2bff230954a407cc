from django.db import migrations


def create_staff_groups(apps, schema_editor):
    from accounts.staff_groups import sync_staff_group_permissions

    # On a fresh database Django creates permissions after all migrations have run, so the
    # groups may start empty here; the post_migrate receiver (accounts.apps) fills them at
    # the end of this same `migrate`, and again whenever an app adds models later.
    sync_staff_group_permissions(apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_staff_groups, migrations.RunPython.noop),
    ]
