"""Demo tool: "deploy" a version by writing deployed-<environment>.json in the sandbox.

Production only takes a version that staging already runs.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from _demo import emit, fail, now, run

ENVIRONMENTS = ("staging", "production")
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,49}$")


def state_path(environment: str) -> Path:
    return Path(f"deployed-{environment}.json")


def read_state(environment: str) -> dict | None:
    path = state_path(environment)
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", required=True)
    parser.add_argument("--environment", required=True, choices=ENVIRONMENTS)
    args = parser.parse_args()
    if not VERSION.match(args.version):
        fail(f"{args.version!r} is not a version (letters, digits, '.', '_', '+', '-')")
    if args.environment == "production":
        staging = read_state("staging")
        if staging is None or staging.get("version") != args.version:
            running = staging.get("version") if staging else "nothing"
            fail(f"refused: production takes only what staging runs, and staging runs {running}")
    current = read_state(args.environment) or {}
    previous = current.get("version")
    history = [*current.get("history", []), previous] if previous else []
    state = {
        "environment": args.environment,
        "version": args.version,
        "history": history[-20:],
        "deployed_at": now(),
    }
    state_path(args.environment).write_text(json.dumps(state, indent=2) + "\n")
    emit({"environment": args.environment, "version": args.version, "previous": previous})


if __name__ == "__main__":
    run(main)
