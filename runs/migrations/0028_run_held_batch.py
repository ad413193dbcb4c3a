"""A fan-in's finishes held as one document: the run's next write applies them.

When many steps finish and the steps they release start write-ahead (98 finishes
and a sink's start), the commit in front of the starts wrote 98 step rows and 98
transcript events: most of that commit, on the critical path. It can now hold the
batch as one document in the run's row (``Run.held``) instead; every write of the
run applies a held batch first, in the same transaction, so its rows, events and
checks land exactly as they would have, a few milliseconds later and before
anything that follows them. A worker taking the run over applies it before it
reads the run (``journal_link.apply_held``). On SQLite (the embedded default) the
function part does nothing and nothing is ever held.

``plannerweb_journal_apply`` is 0027's write function without the run's lock and
lease check; ``plannerweb_journal_write`` takes the lock, checks the lease, applies
a held batch, then holds or applies its own.
"""

import importlib

from django.db import migrations, models

_PREVIOUS = importlib.import_module("runs.migrations.0027_run_starting_intent")

# The run's lock and lease check, as 0026 wrote them: the part the apply function leaves out.
_LEASE_CHECK = _PREVIOUS.CREATE[
    _PREVIOUS.CREATE.index("    SELECT lease_owner INTO v_owner") : _PREVIOUS.CREATE.index(
        "    -- The run's move:"
    )
]


# A held batch, [stamp, alike, singles, single ids, verdicts, events, unlock, starting],
# is applied first; a batch to hold is stored in its place, and nothing else is written.
_HELD = r"""    IF v_held <> '' THEN
        v_doc := v_held::jsonb;
        v_first := plannerweb_journal_apply(
            p_run, (v_doc->>0)::timestamptz, NULL, v_doc->1, NULLIF(v_doc->2, 'null'),
            ARRAY(SELECT jsonb_array_elements_text(v_doc->3)::bigint), NULLIF(v_doc->4, 'null'),
            NULLIF(v_doc->5, 'null'), ARRAY(SELECT jsonb_array_elements_text(v_doc->6)::bigint),
            false, NULLIF(v_doc->7, 'null'));
        UPDATE runs_run SET held = '' WHERE id = p_run;
    END IF;
    IF p_hold IS NOT NULL THEN
        UPDATE runs_run SET held = p_hold WHERE id = p_run;
        RETURN v_first;
    END IF;
"""


def _changed(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# 0027's function as the part that applies a batch: its caller holds the run's lock.
APPLY = _changed(
    _changed(
        _changed(
            _PREVIOUS.CREATE,
            "FUNCTION plannerweb_journal_write(\n    p_run bigint,\n    p_fence text,\n",
            "FUNCTION plannerweb_journal_apply(\n    p_run bigint,\n",
        ),
        _LEASE_CHECK,
        "",
    ),
    "    v_owner text;\n",
    "",
)

# 0027's function with a held batch: one more argument (the batch to hold, as text); the
# run's held batch applied right after the lease check, its events numbered first; the new
# batch then held (and nothing else written) or applied as before.
WRITE = _changed(
    _changed(
        _changed(
            _changed(
                _changed(
                    _PREVIOUS.CREATE,
                    "    p_starting jsonb\n)",
                    "    p_starting jsonb,\n    p_hold text\n)",
                ),
                "    v_seqs bigint[];\n",
                "    v_seqs bigint[];\n    v_held text;\n    v_doc jsonb;\n"
                "    v_first bigint[] := '{}';\n",
            ),
            "SELECT lease_owner INTO v_owner FROM runs_run",
            "SELECT lease_owner, held INTO v_owner, v_held FROM runs_run",
        ),
        "    -- The run's move:",
        _HELD + "    -- The run's move:",
    ),
    "    RETURN COALESCE(v_seqs, '{}');",
    "    RETURN v_first || COALESCE(v_seqs, '{}');",
)

DROP_APPLY = (
    "DROP FUNCTION IF EXISTS plannerweb_journal_apply("
    "bigint, timestamptz, jsonb, jsonb, jsonb, bigint[], jsonb, jsonb, bigint[], boolean, jsonb)"
)
DROP = (
    "DROP FUNCTION IF EXISTS plannerweb_journal_write("
    "bigint, text, timestamptz, jsonb, jsonb, jsonb, bigint[], jsonb, jsonb, bigint[], boolean, "
    "jsonb, text)"
)


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_PREVIOUS.DROP, params=None)
        schema_editor.execute(APPLY, params=None)  # their % are PL/pgSQL's, not placeholders
        schema_editor.execute(WRITE, params=None)


def restore_previous(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)
        schema_editor.execute(DROP_APPLY, params=None)
        schema_editor.execute(_PREVIOUS.CREATE, params=None)


class Migration(migrations.Migration):
    dependencies = [("runs", "0027_run_starting_intent")]

    operations = [
        migrations.AddField(
            model_name="run",
            name="held",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.RunPython(create_functions, restore_previous),
    ]
