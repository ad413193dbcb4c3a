"""Fuzz plan parsing and validation: N generated plans, and what came out of each.

Runs the properties of tests/runs/planning/test_fuzz.py on many more cases: half
plan documents straight into ``validate_plan`` (as a model's parsed answer or an
API object arrives), half plan text through ``parse_plan_text`` first (as the
form, a review edit, the CLI and the API's text field do). Prints the counts; a
non-zero "unexpected exceptions" or "unstorable plans accepted" is a bug, and
the first few are shown.

    .venv/bin/python bench/fuzz_plans.py                 # 20,000 cases
    .venv/bin/python bench/fuzz_plans.py -n 2000 --seed 7
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="cases in all (default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plannerweb.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from hypothesis import HealthCheck, given, seed, settings

    from tests.runs.planning.fuzzing import check_document, check_text, documents, texts

    counts: Counter[str] = Counter()
    shown: list[str] = []

    def record(kind: str, run: Any, value: Any) -> None:
        counts[f"{kind} cases"] += 1
        try:
            validated = run(value)
        except AssertionError as exc:
            counts["unstorable plans accepted"] += 1
            shown.append(f"{kind}: {str(exc)[:300]}")
        except Exception as exc:
            counts["unexpected exceptions"] += 1
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{frame.filename}:{frame.lineno} in {frame.name}"
            shown.append(f"{kind}: {type(exc).__name__}: {str(exc)[:200]} ({where})")
        else:
            if validated is None:
                counts["refused as text"] += 1
            elif validated.is_valid:
                counts["valid plans"] += 1
            else:
                counts["plans with problems"] += 1

    options = settings(
        max_examples=args.n // 2,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )

    @seed(args.seed)
    @options
    @given(documents)
    def fuzz_documents(raw: Any) -> None:
        record("document", check_document, raw)

    @seed(args.seed)
    @options
    @given(texts)
    def fuzz_texts(text: str) -> None:
        record("text", check_text, text)

    fuzz_documents()
    fuzz_texts()
    total = counts["document cases"] + counts["text cases"]
    print(f"cases: {total} ({counts['document cases']} documents, {counts['text cases']} texts)")
    for key in ("valid plans", "plans with problems", "refused as text"):
        print(f"{key}: {counts[key]}")
    print(f"unexpected exceptions: {counts['unexpected exceptions']}")
    print(f"unstorable plans accepted: {counts['unstorable plans accepted']}")
    for line in shown[:5]:
        print("---\n" + line)
    return 1 if counts["unexpected exceptions"] or counts["unstorable plans accepted"] else 0


if __name__ == "__main__":
    sys.exit(main())
