"""A GIN index on contact attributes for segment conditions (PostgreSQL only).

Segment `eq` conditions on attributes compile to `attributes @> {...}`, which
this index serves. SQLite (the embedded default) has no such index type.
"""

from django.db import migrations

INDEX = "contacts_contact_attributes_gin"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON contacts_contact USING gin (attributes jsonb_path_ops)"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("contacts", "0002_contacts_lists_segments_suppressions_events_imports")]

    operations = [migrations.RunPython(create_index, drop_index)]
