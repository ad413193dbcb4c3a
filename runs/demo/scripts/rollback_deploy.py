"""Demo tool: put an environment back on the version it ran before the last deploy.

With ``--version`` it only undoes a deploy of that version, so a plan's rollback
is safe to run even when its deploy never happened.
"""

from __future__ import annotations

import argparse
import json

from _demo import emit, now, run
from deploy import ENVIRONMENTS, read_state, state_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--environment", required=True, choices=ENVIRONMENTS)
    parser.add_argument("--version", default=None, help="only undo a deploy of this version")
    args = parser.parse_args()
    env = args.environment
    state = read_state(env)
    result = {"environment": env, "rolled_back": False}
    if state is None:
        emit(result | {"reason": f"nothing is deployed to {env}"})
    current = state.get("version")
    if args.version and current != args.version:
        emit(result | {"reason": f"{env} runs {current}, not {args.version}: nothing to undo"})
    history = list(state.get("history", []))
    previous = history.pop() if history else None
    if previous is None:
        state_path(env).unlink()
    else:
        state_path(env).write_text(
            json.dumps(
                {"environment": env, "version": previous, "history": history, "deployed_at": now()},
                indent=2,
            )
            + "\n"
        )
    emit(result | {"rolled_back": True, "from": current, "to": previous})


if __name__ == "__main__":
    run(main)
