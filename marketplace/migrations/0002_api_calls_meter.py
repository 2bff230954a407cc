from django.db import migrations


def api_calls_meter(apps, schema_editor):
    """The catalog always has `api_calls` (a sum of quantities), which any customer's key may
    report and which plans' "API calls per month" will become a free allowance on."""
    Meter = apps.get_model("marketplace", "Meter")
    Meter.objects.get_or_create(
        code="api_calls",
        defaults={"name": "API calls", "unit": "call", "aggregation": "sum", "property": ""},
    )


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0001_initial")]

    operations = [migrations.RunPython(api_calls_meter, migrations.RunPython.noop)]
