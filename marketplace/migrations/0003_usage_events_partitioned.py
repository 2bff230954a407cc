# ruff: noqa: S608 (table names are this migration's constants, never input)
"""Usage events partitioned by month on PostgreSQL, deduplicated through `UsageEventKey`.

A partitioned table's unique indexes must include the partition key, so "one event per customer
and event id, whatever its timestamp" moves to the small unpartitioned `UsageEventKey` table,
filled here from the stored events (same ids). Then, on PostgreSQL, the events table is rebuilt
as `PARTITION BY RANGE (timestamp)`: a DEFAULT partition (an insert never fails) and one
partition per calendar month (UTC) holding stored events or within reach of new ones; the rows
are copied across and the old table dropped. Primary key there: (id, timestamp). Elsewhere
(SQLite) the table stays an ordinary one and only loses its unique constraint.

The month partitions are written out here (not imported from `usage_store`) so the migration
keeps doing what it did when the code moves on; `usage_partitions_ensure` adds later months.
"""

from datetime import UTC, datetime, timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

EVENTS = "marketplace_usageevent"
KEYS = "marketplace_usageeventkey"


def _copy_keys(apps, schema_editor):
    """One key row per stored event, with the event's id (so the ids stay one sequence)."""
    qn = schema_editor.quote_name
    schema_editor.execute(
        f"INSERT INTO {qn(KEYS)} (id, customer_id, event_id, {qn('timestamp')}) "
        f"SELECT id, customer_id, event_id, {qn('timestamp')} FROM {qn(EVENTS)}"
    )
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"SELECT setval(pg_get_serial_sequence('{KEYS}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {KEYS}), 0) + 1, false)"
        )


def _delete_keys(apps, schema_editor):
    schema_editor.execute(f"DELETE FROM {schema_editor.quote_name(KEYS)}")


def _month_start(at: datetime) -> datetime:
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


def _partition_on_postgres(apps, schema_editor):
    users = apps.get_model(settings.AUTH_USER_MODEL)._meta.db_table
    meters = apps.get_model("marketplace", "Meter")._meta.db_table
    execute = schema_editor.execute
    execute(f"ALTER TABLE {EVENTS} RENAME TO {EVENTS}_unpartitioned")
    execute(f"ALTER INDEX {EVENTS}_pkey RENAME TO {EVENTS}_unpartitioned_pkey")
    execute(
        f"""CREATE TABLE {EVENTS} (
            id bigint NOT NULL,
            event_id varchar(255) NOT NULL,
            quantity numeric(15, 6) NOT NULL,
            "timestamp" timestamp with time zone NOT NULL,
            properties jsonb NOT NULL,
            received_at timestamp with time zone NOT NULL,
            customer_id bigint NOT NULL,
            meter_id bigint NOT NULL,
            CONSTRAINT {EVENTS}_pkey PRIMARY KEY (id, "timestamp"),
            CONSTRAINT marketplace_usageevent_quantity_gte_0 CHECK (quantity >= 0),
            CONSTRAINT {EVENTS}_customer_id_fk FOREIGN KEY (customer_id)
                REFERENCES {users} (id) DEFERRABLE INITIALLY DEFERRED,
            CONSTRAINT {EVENTS}_meter_id_fk FOREIGN KEY (meter_id)
                REFERENCES {meters} (id) DEFERRABLE INITIALLY DEFERRED
        ) PARTITION BY RANGE ("timestamp")"""
    )
    # The indexes the model declares (created on every partition, present and future); before
    # the rows are copied, as deferred foreign key checks would then forbid CREATE INDEX.
    execute(f"CREATE INDEX marketplace_usageevent_cust_ev ON {EVENTS} (customer_id, event_id)")
    execute(f"CREATE INDEX {EVENTS}_meter_id ON {EVENTS} (meter_id)")
    execute(f"CREATE TABLE {EVENTS}_default PARTITION OF {EVENTS} DEFAULT")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT date_trunc('month', \"timestamp\" AT TIME ZONE 'UTC') "
            f"FROM {EVENTS}_unpartitioned"
        )
        months = {row[0].replace(tzinfo=UTC) for row in cursor.fetchall()}
    now = datetime.now(tz=UTC)
    month = _month_start(now - timedelta(days=35))
    while month <= _month_start(now + timedelta(days=93)):
        months.add(month)
        month = _next_month(month)
    for start in sorted(months):
        end = _next_month(start)
        execute(
            f"CREATE TABLE {EVENTS}_p{start:%Y%m} PARTITION OF {EVENTS} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    execute(
        f'INSERT INTO {EVENTS} (id, event_id, quantity, "timestamp", properties, received_at,'
        ' customer_id, meter_id) SELECT id, event_id, quantity, "timestamp", properties,'
        f" received_at, customer_id, meter_id FROM {EVENTS}_unpartitioned"
    )
    execute("SET CONSTRAINTS ALL IMMEDIATE")  # check the copied rows' foreign keys now
    execute(f"DROP TABLE {EVENTS}_unpartitioned")


class PartitionedOnPostgres(migrations.SeparateDatabaseAndState):
    """The model's new state everywhere; on PostgreSQL the table is rebuilt partitioned instead
    of altered (its operations would not fit a partitioned table)."""

    def __init__(self, operations):
        super().__init__(database_operations=operations, state_operations=operations)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            _partition_on_postgres(from_state.apps, schema_editor)
        else:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            raise NotImplementedError("Un-partitioning the usage events is not supported.")
        super().database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self):
        return "Usage events: partitioned by month on PostgreSQL, no unique constraint"


class Migration(migrations.Migration):
    dependencies = [
        ("marketplace", "0002_api_calls_meter"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageEventKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("event_id", models.CharField(max_length=255)),
                ("timestamp", models.DateTimeField()),
                (
                    "customer",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("customer", "event_id"),
                        name="marketplace_usageeventkey_customer_event_id",
                    )
                ],
            },
        ),
        migrations.RunPython(_copy_keys, _delete_keys),
        PartitionedOnPostgres(
            [
                migrations.RemoveConstraint(
                    model_name="usageevent", name="marketplace_usageevent_customer_event_id"
                ),
                migrations.AlterField(
                    model_name="usageevent",
                    name="customer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="usage_events",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AddIndex(
                    model_name="usageevent",
                    index=models.Index(
                        fields=["customer", "event_id"], name="marketplace_usageevent_cust_ev"
                    ),
                ),
            ]
        ),
    ]
