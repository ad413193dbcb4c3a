"""The run's write-ahead intent: the steps about to start, committed before their tools are called.

When many write-ahead steps start together (98 behind one root), the commit in
front of their tools held all their ``running`` rows and events. Now it holds the
ids of the steps about to start (``Run.starting``), and their rows follow while the
tools run (``runs.execution.commit_policy``). The journal's write function takes
the intent as one more argument; a run that ends clears it. On SQLite (the embedded
default) the function part does nothing.
"""

import importlib

from django.db import migrations, models

_PREVIOUS = importlib.import_module("runs.migrations.0026_journal_write_function")


def _changed(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


# 0026's function, with the intent: a new last argument, written after the run's move,
# and cleared when the run ends.
CREATE = _changed(
    _changed(
        _changed(
            _PREVIOUS.CREATE,
            "    p_unlock_all boolean\n)",
            "    p_unlock_all boolean,\n    p_starting jsonb\n)",
        ),
        "finished_at = p_stamp, lease_owner = '', lease_expires_at = NULL",
        "finished_at = p_stamp, lease_owner = '', lease_expires_at = NULL,\n"
        "                starting = '[]'::jsonb",
    ),
    "    -- Steps that change alike:",
    "    -- The write-ahead intent: the steps about to start, or '[]' once their rows are in.\n"
    "    IF p_starting IS NOT NULL THEN\n"
    "        UPDATE runs_run SET starting = p_starting WHERE id = p_run;\n"
    "    END IF;\n"
    "    -- Steps that change alike:",
)

DROP = (
    "DROP FUNCTION IF EXISTS plannerweb_journal_write("
    "bigint, text, timestamptz, jsonb, jsonb, jsonb, bigint[], jsonb, jsonb, bigint[], boolean, "
    "jsonb)"
)


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_PREVIOUS.DROP, params=None)
        schema_editor.execute(CREATE, params=None)  # its % are PL/pgSQL's, not placeholders


def restore_previous(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)
        schema_editor.execute(_PREVIOUS.CREATE, params=None)


class Migration(migrations.Migration):
    dependencies = [("runs", "0026_journal_write_function")]

    operations = [
        migrations.AddField(
            model_name="run",
            name="starting",
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        migrations.RunPython(create_function, restore_previous),
    ]
