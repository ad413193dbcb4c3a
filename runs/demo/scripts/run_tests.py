"""Demo tool: run a test suite against the sandbox (demo checks; ``--fail=true`` adds a failing one)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from _demo import DEFAULT_DB, boolean, connect, emit, ensure_demo_db, fail, run


def _db_opens() -> str:
    ensure_demo_db(Path(DEFAULT_DB))
    conn = connect(Path(DEFAULT_DB))
    try:
        return f"{len(conn.execute('SELECT name FROM sqlite_master').fetchall())} schema objects"
    finally:
        conn.close()


def _orders_reference_users() -> str:
    conn = connect(Path(DEFAULT_DB))
    try:
        orphans = conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()
    assert not orphans, f"{len(orphans)} orders point at missing users"
    return "no orphans"


def _totals_not_negative() -> str:
    conn = connect(Path(DEFAULT_DB))
    try:
        (bad,) = conn.execute("SELECT count(*) FROM orders WHERE total_cents < 0").fetchone()
    finally:
        conn.close()
    assert bad == 0, f"{bad} orders have a negative total"
    return "all totals >= 0"


def _staging_deployed() -> str:
    path = Path("deployed-staging.json")
    assert path.exists(), "nothing is deployed to staging"
    version = json.loads(path.read_text()).get("version")
    assert version, "staging has no version"
    return f"staging runs {version}"


def _injected_failure() -> str:
    raise AssertionError("injected failure (fail=true)")


SUITES: dict[str, list[Callable[[], str]]] = {
    "unit": [_db_opens, _orders_reference_users, _totals_not_negative],
    "smoke": [_staging_deployed, _db_opens, _orders_reference_users],
}
SUITES["integration"] = SUITES["unit"] + SUITES["smoke"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--fail", type=boolean, default=False)
    parser.add_argument(
        "--seconds", type=float, default=0.0, help="pretend the suite takes this long"
    )
    args = parser.parse_args()
    checks = SUITES.get(args.suite)
    if checks is None:
        fail(f"unknown suite {args.suite!r} (known: {', '.join(SUITES)})")
    if args.fail:
        checks = [*checks, _injected_failure]
    time.sleep(max(0.0, min(args.seconds, 30.0)))
    results = []
    for check in checks:
        name = check.__name__.lstrip("_")
        try:
            results.append({"name": name, "ok": True, "detail": check()})
        except Exception as exc:  # a check's failure is a test result, not a crash
            results.append({"name": name, "ok": False, "detail": str(exc) or type(exc).__name__})
    failed = [r for r in results if not r["ok"]]
    if failed:
        detail = "; ".join(f"{r['name']}: {r['detail']}" for r in failed)
        fail(f"{len(failed)} of {len(results)} {args.suite} test(s) failed: {detail}")
    emit({"suite": args.suite, "passed": len(results), "failed": 0, "tests": results})


if __name__ == "__main__":
    run(main)
