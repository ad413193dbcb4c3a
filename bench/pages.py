"""Server time and query count of the dashboard's pages on a big PostgreSQL database.

Loads 100k runs (one task and one plan each) with 1M steps and ~1.2M transcript
events into a scratch database (``INSERT ... SELECT generate_series``: a few
seconds), plus one large run (500 steps, 5,000 events) and a review item for
every tenth run (one in five of them open; their stored risk and submitter filled
by the migration's backfill, ``reviews.risk.stored_facts_backfill``); then requests each page through
Django's test client as an operator (the review queue as a reviewer) and prints p50 / p95 server time
and the query count (``CaptureQueriesContext``). Targets: p95 <= 100 ms and at
most 10 queries, the same whatever the data size.

    .venv/bin/python bench/pages.py                   # database plannerweb_pages, recreated
    .venv/bin/python bench/pages.py --runs 10000      # smaller
    .venv/bin/python bench/pages.py --reuse           # keep the loaded data from a previous run
    BENCH_PG=postgres://user@host:5432 .venv/bin/python bench/pages.py
    BENCH_PAGES_DB=other_name .venv/bin/python bench/pages.py  # another scratch database
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = os.environ.get("BENCH_PAGES_DB", "plannerweb_pages")
STEPS_PER_RUN = 10
BIG_STEPS = 500
BIG_EVENTS = 5000
REVIEW_EVERY = 10  # one review item per this many runs
OPEN_EVERY = 5  # of those, one in this many still open
GRAPH_STEPS = 300  # the most the run page draws (runs.views.detail.GRAPH_LIMIT)
STATUSES = ["succeeded", "failed", "cancelled", "rolled_back", "succeeded", "succeeded"]


def setup_django(*, reuse: bool) -> None:
    import psycopg

    base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    if not reuse:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    os.environ["DATABASE_URL"] = f"{base}/{DB_NAME}"
    os.environ["PLANNERWEB_WORKER"] = "none"
    os.environ["PLANNERWEB_VAR_DIR"] = tempfile.mkdtemp(prefix="plannerweb-pages-")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "plannerweb.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _database_defaults()


def _database_defaults() -> None:
    """Give the bulk-inserted tables' columns their model defaults in the database too.

    The inserts below name only the columns that matter to the pages; every other column
    (those added since, with a default in the model) takes its model default.
    """
    import json

    from django.db import connection, models

    from reviews.models import ReviewItem
    from runs.models import Plan, Run, Step, Task, TranscriptEvent

    with connection.cursor() as cursor:
        for model in (Task, Run, Plan, Step, TranscriptEvent, ReviewItem):
            for field in model._meta.concrete_fields:
                if field.primary_key:
                    continue
                if not field.has_default():
                    # Django stores "" for a blank text column the form left empty: so here.
                    if not isinstance(field, models.CharField | models.TextField) or field.null:
                        continue
                    literal = "''"
                elif isinstance(field, models.UUIDField):
                    literal = "gen_random_uuid()"
                else:
                    value = field.get_default()
                    if isinstance(field, models.JSONField):
                        literal = "'" + json.dumps(value).replace("'", "''") + "'::jsonb"
                    elif isinstance(value, bool):
                        literal = "TRUE" if value else "FALSE"
                    elif isinstance(value, int | float):
                        literal = str(value)
                    elif isinstance(value, str):
                        literal = "'" + value.replace("'", "''") + "'"
                    else:
                        continue
                cursor.execute(
                    f"ALTER TABLE {model._meta.db_table} ALTER COLUMN "
                    f"{connection.ops.quote_name(field.column)} SET DEFAULT {literal}"
                )


def one_run(run_id: int, title: str, goal: str, *, started: bool) -> str:
    """SQL for one executing run (its task and its one plan, all with id ``run_id``)."""
    return f"""
            INSERT INTO runs_task (id, title, description, created_at, max_replans, mode,
                                   model, planner)
            VALUES ({run_id}, '{title}', '', now(), 3, 'auto', '', '');
            INSERT INTO runs_run (id, task_id, status, stop_reason, max_parallel, lease_owner,
                                  created_at, started_at)
            VALUES ({run_id}, {run_id}, 'executing', '', 8, '', now(),
                    {"now()" if started else "NULL"});
            INSERT INTO runs_plan (id, run_id, version, source, goal, document, rollback,
                                   is_valid, errors, created_at)
            VALUES ({run_id}, {run_id}, 1, 'operator', '{goal}', '{{}}'::jsonb, '[]'::jsonb,
                    true, '[]'::jsonb, now());
            UPDATE runs_run SET current_plan_id = {run_id} WHERE id = {run_id};"""


def load(runs: int) -> dict[str, Any]:
    """Bulk-load ``runs`` finished runs of 10 steps, and one big run; returns ids to visit."""
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from runs.permissions import OPERATORS

    operator, _ = User.objects.get_or_create(username="bench-operator")
    operator.groups.add(Group.objects.get(name=OPERATORS))
    submitters = [User.objects.get_or_create(username=f"bench-user-{i}")[0].pk for i in range(20)]
    statuses = "ARRAY[" + ",".join(f"'{s}'" for s in STATUSES) + "]"
    started = time.perf_counter()
    with connection.cursor() as cur:
        # Ids follow generate_series (fresh database: sequences start at 1), fixed up below.
        cur.execute(
            f"""
            INSERT INTO runs_task (id, title, description, created_at, submitted_by_id,
                                   max_replans, mode, model, planner)
            SELECT g, 'Bench task ' || g || ' migrate shard ' || (g % 97), '',
                   now() - (({runs} - g) || ' seconds')::interval,
                   (ARRAY{submitters})[1 + g % {len(submitters)}], 3, 'auto', '', ''
            FROM generate_series(1, {runs}) g
            """
        )
        cur.execute(
            f"""
            INSERT INTO runs_run (id, task_id, status, stop_reason, max_parallel, lease_owner,
                                  created_at, started_at, finished_at)
            SELECT g, g, ({statuses})[1 + g % {len(STATUSES)}], '', 8, '',
                   now() - (({runs} - g) || ' seconds')::interval,
                   now() - (({runs} - g) || ' seconds')::interval,
                   now() - (({runs} - g) || ' seconds')::interval + interval '2 seconds'
            FROM generate_series(1, {runs}) g
            """
        )
        cur.execute(
            f"""
            INSERT INTO runs_plan (id, run_id, version, source, goal, document, rollback,
                                   is_valid, errors, created_at)
            SELECT g, g, 1, 'operator', 'Bench goal ' || g, '{{}}'::jsonb, '[]'::jsonb, true,
                   '[]'::jsonb, now()
            FROM generate_series(1, {runs}) g
            """
        )
        cur.execute("UPDATE runs_run SET current_plan_id = id")
        cur.execute(
            f"""
            INSERT INTO runs_step (run_id, plan_id, key, phase, position, tool_name, params,
                                   depends_on, description, status, attempts, result, error,
                                   started_at, finished_at, verdict, verdict_reason)
            SELECT r, r, 's' || p, 'main', p, 'sleep', jsonb_build_object('ms', 10),
                   CASE WHEN p = 0 THEN '[]'::jsonb ELSE jsonb_build_array('s' || (p - 1)) END,
                   '', CASE WHEN p < 8 OR r % 3 = 0 THEN 'succeeded' ELSE 'failed' END, 1,
                   '{{"slept_ms": 10}}'::jsonb, '', now(), now(), '', ''
            FROM generate_series(1, {runs}) r, generate_series(0, {STEPS_PER_RUN - 1}) p
            """
        )
        cur.execute(
            f"""
            INSERT INTO runs_transcriptevent (run_id, seq, role, kind, payload, created_at)
            SELECT r, 1 + p, 'executor', 'step.status',
                   jsonb_build_object('step_id', 1, 'step', 's' || p, 'from_status', 'running',
                                      'to_status', 'succeeded', 'attempt', 1),
                   now()
            FROM generate_series(1, {runs}) r, generate_series(0, {STEPS_PER_RUN + 1}) p
            """
        )
        # The big run: many steps (beyond the graph limit) and many events.
        big = runs + 1
        cur.execute(
            f"""
            {one_run(big, "The big one", "Big", started=False)}
            INSERT INTO runs_step (run_id, plan_id, key, phase, position, tool_name, params,
                                   depends_on, description, status, attempts, error, verdict,
                                   verdict_reason)
            SELECT {big}, {big}, 'b' || p, 'main', p, 'sleep', jsonb_build_object('ms', p),
                   '[]'::jsonb, '', 'succeeded', 1, '', '', ''
            FROM generate_series(0, {BIG_STEPS - 1}) p;
            INSERT INTO runs_transcriptevent (run_id, seq, role, kind, payload, created_at)
            SELECT {big}, g, 'executor', 'step.status',
                   jsonb_build_object('step_id', 1, 'step', 'b' || (g % {BIG_STEPS}),
                                      'from_status', 'running', 'to_status', 'succeeded',
                                      'attempt', 1),
                   now()
            FROM generate_series(1, {BIG_EVENTS}) g;
            """
        )
        # The biggest plan still drawn as a graph: a fan-out/fan-in DAG of finished steps with
        # timings, results and verdicts, so every cell of the step table is filled.
        graph = runs + 2
        cur.execute(
            f"""
            {one_run(graph, "The graph one", "Graph", started=True)}
            INSERT INTO runs_step (run_id, plan_id, key, phase, position, tool_name, params,
                                   depends_on, description, status, attempts, result, error,
                                   started_at, finished_at, verdict, verdict_reason)
            SELECT {graph}, {graph}, 'g' || p, 'main', p, 'sleep', jsonb_build_object('ms', p),
                   CASE WHEN p < 10 THEN '[]'::jsonb
                        ELSE jsonb_build_array('g' || (p - 10), 'g' || (p - 9 + p % 7))
                   END,
                   'step ' || p, CASE WHEN p < 200 THEN 'succeeded' ELSE 'pending' END, 1,
                   CASE WHEN p < 200 THEN jsonb_build_object('slept_ms', p) END, '',
                   CASE WHEN p < 200 THEN now() END,
                   CASE WHEN p < 200 THEN now() + interval '1.5 seconds' END,
                   CASE WHEN p < 200 THEN 'pass' ELSE '' END, ''
            FROM generate_series(0, {GRAPH_STEPS - 1}) p;
            INSERT INTO runs_transcriptevent (run_id, seq, role, kind, payload, created_at)
            SELECT {graph}, g, 'executor', 'step.status',
                   jsonb_build_object('step_id', 1, 'step', 'g' || (g % {GRAPH_STEPS}),
                                      'from_status', 'running', 'to_status', 'succeeded',
                                      'attempt', 1),
                   now()
            FROM generate_series(1, 2 * {GRAPH_STEPS}) g;
            """
        )
        for table in ("runs_task", "runs_run", "runs_plan", "runs_step", "runs_transcriptevent"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        cur.execute("ANALYZE")
        cur.execute("SELECT count(*) FROM runs_step")
        steps = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM runs_transcriptevent")
        events = cur.fetchone()[0]
    return {
        "operator": operator,
        "big": big,
        "graph": graph,
        "typical": runs // 2,
        "steps": steps,
        "events": events,
        "load_seconds": time.perf_counter() - started,
    }


def load_reviews(runs: int) -> Any:
    """One review item per ``REVIEW_EVERY`` runs, every ``OPEN_EVERY``-th of them open; a reviewer.

    Every third item's plan has a step deploying to production, so the queue's risk
    columns, sorts and filters have something to find.
    """
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from runs.permissions import REVIEWERS

    reviewer, _ = User.objects.get_or_create(username="bench-reviewer")
    reviewer.groups.add(Group.objects.get(name=REVIEWERS))
    with connection.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO reviews_reviewitem (kind, status, cause, reason_opened, run_id, plan_id,
                                            created_at, due_at, required_approvals, context,
                                            checklist, params_hash, decision, reason)
            SELECT 'plan_approval',
                   CASE WHEN g % {OPEN_EVERY * REVIEW_EVERY} = 0 THEN 'open' ELSE 'approved' END,
                   'policy', 'global policy: every plan needs approval', g, g,
                   now() - (({runs} - g) || ' seconds')::interval,
                   now() - (({runs} - g) || ' seconds')::interval + interval '1 hour', 1,
                   '{{}}'::jsonb, '[]'::jsonb, '', '', ''
            FROM generate_series({REVIEW_EVERY}, {runs}, {REVIEW_EVERY}) g
            """
        )
        cur.execute(
            f"""
            UPDATE runs_step SET params = jsonb_build_object('ms', 10, 'env', 'production')
            WHERE position = 3 AND run_id % {3 * REVIEW_EVERY} = 0 AND run_id <= {runs}
            """
        )
    # The items store their plan's risk and their submitter, as opening them does.
    from reviews.models import ReviewItem
    from reviews.policies import global_policy
    from reviews.risk import stored_facts_backfill
    from runs.models import Run, Step

    stored_facts_backfill(
        ReviewItem.objects.all(),
        Step.objects.all(),
        Run.objects.all(),
        low_confidence=global_policy().threshold,
    )
    with connection.cursor() as cur:
        cur.execute("ANALYZE reviews_reviewitem")
        cur.execute("ANALYZE runs_step")
    return reviewer


def measure(client: Any, url: str, repeat: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):  # warm caches, templates, the connection
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    times, counts = [], set()
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        counts.add(len(queries))
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": times[max(0, int(len(times) * 0.95) - 1)],
        "queries": sorted(counts),
        "slowest_sql": max(queries.captured_queries, key=lambda q: float(q["time"]))
        if queries.captured_queries
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep the data already loaded")
    parser.add_argument("--sql", action="store_true", help="print each page's slowest query")
    args = parser.parse_args()
    setup_django(reuse=args.reuse)
    from django.contrib.auth.models import User
    from django.test import Client

    from runs.models import Run, Step, TranscriptEvent

    if args.reuse and Run.objects.exists():
        big = Run.objects.get(task__title="The big one").pk
        info = {
            "operator": User.objects.get(username="bench-operator"),
            "big": big,
            "graph": Run.objects.filter(task__title="The graph one")
            .values_list("pk", flat=True)
            .first(),
            "typical": (big - 1) // 2,
            "steps": Step.objects.count(),
            "events": TranscriptEvent.objects.count(),
            "load_seconds": 0.0,
        }
    else:
        info = load(args.runs)
    from reviews.models import ReviewItem

    reviewer = (
        User.objects.get(username="bench-reviewer")
        if ReviewItem.objects.exists()
        else load_reviews(Run.objects.filter(task__title__startswith="Bench task").count())
    )
    items = ReviewItem.objects.count()
    open_items = ReviewItem.objects.filter(status="open").count()
    runs = Run.objects.count()
    print(
        f"plannerweb pages on PostgreSQL ({platform.python_version()}): {runs:,} runs, "
        f"{info['steps']:,} steps, {info['events']:,} events; "
        f"loaded in {info['load_seconds']:.1f} s"
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(info["operator"])
    deep_page = max(1, runs // 50 - 5)
    pages = [
        ("runs list, first page", "/"),
        ("runs list, status=failed", "/?status=failed"),
        ("runs list, by submitter", "/?submitter=bench-user-3"),
        ("runs list, text search", "/?q=shard+42"),
        (f"runs list, page {deep_page}", f"/?page={deep_page}"),
        ("runs list, htmx refresh", "/"),
        ("run detail, 10 steps", f"/runs/{info['typical']}/"),
        (f"run detail, {BIG_STEPS} steps / {BIG_EVENTS} events", f"/runs/{info['big']}/"),
        *(
            [(f"run detail, {GRAPH_STEPS} steps with graph", f"/runs/{info['graph']}/")]
            if info["graph"]
            else []
        ),
        ("API runs, first page", "/api/runs"),
        ("API runs, deep offset", f"/api/runs?offset={runs - 100}"),
    ]
    reviewing = Client(HTTP_HOST="localhost")
    reviewing.force_login(reviewer)
    queue_pages = [
        (f"review queue, {open_items:,} open", "/reviews/"),
        ("review queue, sort=risk", "/reviews/?sort=risk"),
        ("review queue, risk=medium", "/reviews/?risk=medium"),
        ("review queue, sort=submitter", "/reviews/?sort=submitter"),
        (
            f"review queue, all {items:,}, page 50",
            "/reviews/?status=all&sort=oldest&page=50",
        ),
        ("API reviews, sort=risk", "/api/reviews?sort=risk"),
    ]
    print(f"{'page':45} {'p50 ms':>8} {'p95 ms':>8}  queries")
    for label, url in [*pages, *(("@" + label, url) for label, url in queue_pages)]:
        if label.startswith("@"):  # the review queue: as a reviewer
            label, client = label[1:], reviewing
        if label.endswith("htmx refresh"):
            client.defaults["HTTP_HX_REQUEST"] = "true"
        result = measure(client, url, args.repeat)
        client.defaults.pop("HTTP_HX_REQUEST", None)
        print(f"{label:45} {result['p50']:8.1f} {result['p95']:8.1f}  {result['queries']}")
        if args.sql and result["slowest_sql"]:
            q = result["slowest_sql"]
            print(f"    slowest {float(q['time']) * 1000:.1f} ms: {q['sql'][:400]}")


if __name__ == "__main__":
    main()
