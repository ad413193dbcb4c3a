"""Racing reviewers: many decisions on the same items at the same instant, through two Daphnes.

Plans are submitted under the ``always`` approval policy, so each waits on a review item. For
every item, four requests are released together: two reviewers, each approving and rejecting,
half of them through a second Daphne process, all on PostgreSQL. Exactly one decision per item
may win. Printed: the decisions sent, the answers by status code, and the double decisions
(items with more than one accepted answer, more than one decision in the hash-chained audit or
in the run's transcript), which must be 0, and whether the audit chain still verifies.

    .venv/bin/python bench/races.py                    # 250 items x 4 = 1,000 decisions
    .venv/bin/python bench/races.py --items 50
    BENCH_PG=postgres://user@host:5432 .venv/bin/python bench/races.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "plannerweb_races"
DECISIONS = ("review.approved", "review.rejected", "review.edited")


def setup_django(base: str) -> None:
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    os.environ["DATABASE_URL"] = f"{base}/{DB_NAME}"
    os.environ["PLANNERWEB_WORKER"] = "none"  # decisions only: the approved runs stay queued
    os.environ["PLANNERWEB_APPROVAL_MODE"] = "always"
    os.environ["PLANNERWEB_VAR_DIR"] = tempfile.mkdtemp(prefix="plannerweb-races-")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "plannerweb.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from runs.models import Tool

    Tool.objects.create(
        name="noop",
        kind="python",
        config={"callable": "runs.tools.builtin.noop"},
        parameters_schema={"type": "object"},
    )


def users() -> tuple[Any, list[str]]:
    """The operator who submits, and one API token for each of two reviewers."""
    from django.contrib.auth.models import Group, User

    from runs.permissions import OPERATORS, REVIEWERS
    from runs.tokens import api_token_create

    operator = User.objects.create_user("olivia", password="race-password")
    operator.groups.add(Group.objects.get_or_create(name=OPERATORS)[0])
    tokens = []
    for name in ("rob", "rita"):
        reviewer = User.objects.create_user(name, password="race-password")
        reviewer.groups.add(Group.objects.get_or_create(name=REVIEWERS)[0])
        tokens.append(api_token_create(user=reviewer, name="races").plaintext)
    return operator, tokens


def daphnes(ports: list[int], logs: Path) -> list[subprocess.Popen[bytes]]:
    from django.conf import settings

    env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY}
    procs = []
    for port in ports:
        out = (logs / f"daphne-{port}.log").open("wb")
        argv = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "plannerweb.asgi:application"]
        procs.append(
            subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=out, stderr=out)
        )
    for port in ports:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
    return procs


def call(port: int, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read() or b"null")


def decision_body(item: dict[str, Any], decision: str) -> dict[str, Any]:
    """What the review page sends: the decision, and the plan version it was taken on."""
    body: dict[str, Any] = {"decision": decision, "reason": f"race {decision}"}
    if decision == "approve":
        body["checklist"] = list(range(len(item.get("checklist") or [])))
    for field in ("plan_version", "plan_hash"):
        if item.get(field) is not None:
            body[field] = item[field]
    return body


def race(ports: list[int], tokens: list[str], item_ids: list[int]) -> dict[int, list[int]]:
    """Four requests per item released together; the status codes each item was answered."""
    answers: dict[int, list[int]] = {item_id: [] for item_id in item_ids}
    lock = threading.Lock()
    for item_id in item_ids:
        status, item = call(ports[0], tokens[0], "GET", f"/reviews/{item_id}")
        assert status == 200, (item_id, status)
        barrier = threading.Barrier(4)

        def decide(
            port: int,
            token: str,
            decision: str,
            item: dict[str, Any] = item,
            barrier: threading.Barrier = barrier,
        ) -> None:
            barrier.wait()
            status, _ = call(
                port, token, "POST", f"/reviews/{item['id']}/decide", decision_body(item, decision)
            )
            with lock:
                answers[item["id"]].append(status)

        threads = [
            threading.Thread(target=decide, args=(ports[i % len(ports)], tokens[i // 2], d))
            for i, d in enumerate(("approve", "reject", "approve", "reject"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=250)
    parser.add_argument("--ports", type=int, nargs=2, default=(8791, 8792))
    args = parser.parse_args()
    base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    setup_django(base)
    from reviews.audit import audit_check
    from reviews.models import AuditEntry, ReviewItem
    from runs.lifecycle.submit import run_submit_plan
    from runs.models import TranscriptEvent

    operator, tokens = users()
    plan = {"goal": "race", "steps": [{"id": "only", "action": "noop"}]}
    runs = [
        run_submit_plan(title=f"race {n}", document=plan, submitted_by=operator)
        for n in range(args.items)
    ]
    item_ids = list(
        ReviewItem.objects.filter(run__in=runs).order_by("pk").values_list("pk", flat=True)
    )
    logs = Path(os.environ["PLANNERWEB_VAR_DIR"]) / "logs"
    logs.mkdir(parents=True)
    procs = daphnes(list(args.ports), logs)
    try:
        answers = race(list(args.ports), tokens, item_ids)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(15)
    codes = Counter(code for statuses in answers.values() for code in statuses)
    accepted_twice = sum(1 for statuses in answers.values() if statuses.count(200) > 1)
    audited = Counter(
        AuditEntry.objects.filter(item_id__in=item_ids, action__in=DECISIONS).values_list(
            "item_id", flat=True
        )
    )
    decided = Counter(
        TranscriptEvent.objects.filter(run__in=runs, kind="review.decided").values_list(
            "run_id", flat=True
        )
    )
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, PostgreSQL"
    )
    print(f"items {len(item_ids)}, decisions sent {sum(len(s) for s in answers.values())}")
    print(f"answers: {dict(sorted(codes.items()))}")
    print(f"items with more than one accepted answer: {accepted_twice}")
    print(f"items with more than one audited decision: {sum(1 for n in audited.values() if n > 1)}")
    print(f"runs with more than one decided event: {sum(1 for n in decided.values() if n > 1)}")
    print(f"items left undecided: {len(item_ids) - len(audited)}")
    print(f"audit chain: {audit_check()}")


if __name__ == "__main__":
    main()
