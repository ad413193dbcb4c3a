"""schemathesis against a live plannerweb: N cases over the whole API, as an operator and a reviewer.

Every check schemathesis has runs on every response (settings in schemathesis.toml);
positive and negative cases alternate per operation, and the cases are split
evenly over the operations, the two modes and the two roles. Prints the cases
run, the 5xx answers and the failures per check; exits 1 on any 5xx or failure.

    # a fresh server (a temporary SQLite database, demo data, Daphne on a free port):
    .venv/bin/python bench/schemathesis_run.py --start -n 10000
    # a running one, with a token per role (manage.py api_token operator ci):
    .venv/bin/python bench/schemathesis_run.py --url http://127.0.0.1:8000 \\
        --operator-token pw_... --reviewer-token pw_... -n 10000
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server() -> Iterator[tuple[str, dict[str, str]]]:
    """Daphne on a temporary SQLite database seeded with the demo; (url, token per role)."""
    with tempfile.TemporaryDirectory(prefix="plannerweb-schemathesis-") as folder:
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
            "DJANGO_SETTINGS_MODULE": "plannerweb.settings",
            "DATABASE_URL": f"sqlite:///{folder}/db.sqlite3",
            "PLANNERWEB_VAR_DIR": folder,
            "PLANNERWEB_SANDBOX_DIR": f"{folder}/sandbox",
            "PLANNERWEB_WORKER": "inprocess",
            "DEBUG": "0",
        }

        def manage(*args: str) -> str:
            done = subprocess.run(
                [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
            )
            if done.returncode:
                raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
            return done.stdout.strip()

        manage("migrate", "--noinput", "-v", "0")
        manage("seed_demo", "--with-runs")
        tokens = {role: manage("api_token", role, "schemathesis") for role in ROLES}
        port = _free_port()
        with Path(folder, "daphne.log").open("wb") as log:
            server = subprocess.Popen(
                [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
                + ["plannerweb.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{url}/api/openapi.json", timeout=2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            yield url, tokens
        finally:
            server.terminate()
            server.wait(timeout=20)


ROLES = ("operator", "reviewer")


def role_schema(url: str, token: str) -> Any:
    """The API's schema loaded with schemathesis.toml and ``token`` as its Bearer auth.

    Given as configured auth (not a header that replaces the generated one), so a
    negative case never counts a header it did not send.
    """
    import tomllib

    import schemathesis
    from schemathesis.config import SchemathesisConfig

    settings = tomllib.loads((ROOT / "schemathesis.toml").read_text())
    settings["auth"] = {"openapi": {"BearerTokenAuth": {"bearer": token}}}
    schema = schemathesis.openapi.from_url(url, config=SchemathesisConfig.from_dict(settings))
    # Revoking the token in use would end the run's own authentication.
    return schema.exclude(path="/api/tokens/{token_id}", method="DELETE")


def _checker(
    url: str,
    role: str,
    checks: list[Any],
    counts: Counter[str],
    failures: Counter[str],
    examples: dict[str, str],
) -> Any:
    """One case sent as ``role``: counted, with its 5xx and each failed check."""
    from schemathesis.core.failures import FailureGroup

    def counted(case: Any) -> None:
        counts["cases"] += 1
        try:
            response = case.call_and_validate(base_url=url, checks=checks, timeout=30)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{role} {case.operation.label}: {failure.title}"
                failures[key] += 1
                examples.setdefault(key, f"{failure}\n{case.as_curl_command()}"[:1500])
            status = getattr(group.exceptions[0], "status_code", 0) or 0
            counts["5xx"] += 500 <= status < 600
        except AssertionError as exc:
            key = f"{role} {case.operation.label}: {str(exc).splitlines()[0][:100]}"
            failures[key] += 1
        else:
            counts["5xx"] += response.status_code >= 500

    return counted


def _run_cases(strategy: Any, examples: int, counted: Any) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        counted(case)

    check()


def run(url: str, tokens: dict[str, str], total: int) -> int:
    from schemathesis import GenerationMode
    from schemathesis.checks import CHECKS, load_all_checks

    load_all_checks()
    checks = CHECKS.get_all()
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    counts: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    examples: dict[str, str] = {}
    operations: list[Any] = []
    for role, token in tokens.items():
        schema = role_schema(f"{url}/api/openapi.json", token)
        operations = [result.ok() for result in schema.get_all_operations()]
        per = max(1, total // (len(operations) * len(modes) * len(tokens)))
        counted = _checker(url, role, checks, counts, failures, examples)
        for operation in operations:
            for mode in modes:
                _run_cases(operation.as_strategy(generation_mode=mode), per, counted)
    print(f"operations: {len(operations)}, roles: {', '.join(tokens)}")
    print(f"cases: {counts['cases']}")
    print(f"5xx: {counts['5xx']}")
    print(f"failures: {sum(failures.values())} ({len(failures)} distinct)")
    for key, count in failures.most_common(20):
        print(f"  {count:5d}  {key}\n{examples.get(key, '')}")
    return 1 if counts["5xx"] or failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="cases in all (default 10000)")
    parser.add_argument("--start", action="store_true", help="start a fresh server for the run")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--operator-token", default=os.environ.get("OPERATOR_TOKEN", ""))
    parser.add_argument("--reviewer-token", default=os.environ.get("REVIEWER_TOKEN", ""))
    args = parser.parse_args()
    if args.start:
        with live_server() as (url, tokens):
            return run(url, tokens, args.n)
    tokens = {"operator": args.operator_token, "reviewer": args.reviewer_token}
    if not all(tokens.values()):
        parser.error("give --operator-token and --reviewer-token, or --start")
    return run(args.url, tokens, args.n)


if __name__ == "__main__":
    sys.exit(main())
