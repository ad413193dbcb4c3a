"""Demo tool: "send" a chat message by appending a JSON line to outbox.jsonl in the sandbox."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _demo import emit, fail, now, run

OUTBOX = Path("outbox.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--message", required=True)
    parser.add_argument("--channel", default="#deploys")
    args = parser.parse_args()
    if not args.message.strip():
        fail("the message is empty")
    with OUTBOX.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"at": now(), "channel": args.channel, "message": args.message}) + "\n")
    with OUTBOX.open(encoding="utf-8") as f:
        lines = sum(1 for _ in f)
    emit({"delivered": True, "path": str(OUTBOX), "channel": args.channel, "line": lines})


if __name__ == "__main__":
    run(main)
