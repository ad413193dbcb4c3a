"""Offline matching: top-1 accuracy on the labelled tasks, "no match" on unrelated ones.

Runs the offline planner's choice (``runs.planning.providers.playbook.choice``)
over the labelled set in tests/runs/planning/matching_set.py (paraphrased tasks
over the demo tools and playbooks) at several similarity thresholds, and lists
the misses at the configured one. No database; no model.

    .venv/bin/python bench/matching.py
    .venv/bin/python bench/matching.py --threshold 0.25
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=None, help="default: the setting")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plannerweb.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    from tests.runs.planning.matching_set import LABELLED, UNRELATED, score

    chosen = args.threshold or settings.PLANNERWEB_PLAYBOOK_MIN_SIMILARITY
    print(f"{len(LABELLED)} labelled tasks, {len(UNRELATED)} unrelated tasks")
    print("threshold  top-1   no-match")
    for threshold in sorted({0.3, 0.4, 0.5, 0.6, 0.7, 0.8, chosen}):
        scores = score(threshold)
        mark = "  <- used" if threshold == chosen else ""
        print(f"{threshold:9.2f}  {scores.top1:6.1%}  {scores.no_match:7.1%}{mark}")
    started = time.perf_counter()
    scores = score(chosen)
    elapsed = time.perf_counter() - started
    per_task = elapsed / (len(LABELLED) + len(UNRELATED)) * 1000
    print(f"\nat {chosen:g}: {per_task:.2f} ms a task (index built per task, as the planner does)")
    for task, expected, got in scores.misses:
        print(f"  miss: {task!r}: expected {expected}, got {got}")
    for task, got in scores.false_matches:
        print(f"  false match: {task!r} -> {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
