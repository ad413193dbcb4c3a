"""Run snapshots: one versioned JSON document holding everything about a run.

``snapshot_export`` writes it (already redacted), ``snapshot_import`` restores it
in any plannerweb as a read-only archived run; ``schema.json`` is its JSON Schema
(published as ``docs/run-snapshot.schema.json``).
"""

from runs.lifecycle.snapshots.document import (
    FORMAT,
    FORMAT_VERSION,
    SnapshotError,
    snapshot_json,
    snapshot_schema,
    snapshot_validate,
)
from runs.lifecycle.snapshots.export import snapshot_export
from runs.lifecycle.snapshots.restore import snapshot_import

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SnapshotError",
    "snapshot_export",
    "snapshot_import",
    "snapshot_json",
    "snapshot_schema",
    "snapshot_validate",
]
