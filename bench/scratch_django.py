"""Django on a scratch SQLite database, migrated: what the single-process benchmarks run on."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_scratch_django() -> None:
    """Set up Django on a new SQLite file in a temp dir (no worker, warnings only) and migrate it."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plannerweb.settings")
    os.environ["PLANNERWEB_WORKER"] = "none"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["PLANNERWEB_VAR_DIR"] = tempfile.mkdtemp(prefix="plannerweb-bench-")
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
