"""A trigram index for the runs list's text search (PostgreSQL only).

``title__icontains`` is ``UPPER(title::text) LIKE UPPER('%…%')``; a B-tree cannot
serve a leading wildcard, a pg_trgm GIN index on the same expression can. On
SQLite (the embedded default) this migration does nothing.
"""

from django.db import migrations

INDEX = "runs_task_title_trgm"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON runs_task USING gin (UPPER(title::text) gin_trgm_ops)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("runs", "0007_run_list_index")]

    operations = [migrations.RunPython(create, drop)]
