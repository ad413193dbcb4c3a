"""Room on each page of the steps table for its rows' next versions (PostgreSQL only).

A step's row is written when its plan is stored, then updated as it starts and
finishes. On a full page an update goes to another page and adds an entry to
each of the table's five indexes; with room on the same page it is a HOT update,
which touches no index. Filled to 60%, a page takes the new versions of the steps
that start or finish together (98 at once in a wide plan), and about four updates
in five are HOT, against one in eight on full pages. The price: the table takes
about 1.7 times the space. Only pages written from now on get the room; on SQLite
(the embedded default) this migration does nothing.
"""

from django.db import migrations

FILLFACTOR = 60


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE runs_step SET (fillfactor = {FILLFACTOR})")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE runs_step RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("runs", "0024_llm_call_words_purpose")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
