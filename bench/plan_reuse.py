"""Plan reuse on the evaluation suite: model calls, tokens and pass rate, reuse off then on.

Every task of the demo golden suite (``runs/demo/evals/demo.yaml``) is planned by the
openai provider, through the real SDK and the evaluation runner's model proxy, against a
scripted model on loopback (``ScriptedModel``) that answers each task with the plan the
suite holds for it (its hand-written plan, or for a model-planned task the recorded one);
a replan is answered with the failed steps' declared fallbacks in their place. Every plan
goes to a reviewer, who decides it as the suite says, so a run that succeeds is one whose
approved plan can be reused. Tasks the suite runs as hand-written plans keep their
no-replan behaviour (``max_replans: 0``).

Pass 1 runs the suite with plan reuse off (``PLANNERWEB_PLAN_REUSE_MIN_SIMILARITY=0``);
pass 2 runs it again in the same database with reuse on (the deployment's threshold), so
pass 1's approved, succeeded runs are there to reuse. Model calls are counted twice: as
received by the scripted server over HTTP, and as recorded (``LlmCall`` rows). Tokens are
what the server reported (characters / 4 of what it was sent and of what it answered).

    .venv/bin/python bench/plan_reuse.py
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SUITE = "demo"
MODEL = "bench-model"


class ScriptedModel:
    """A loopback server in the OpenAI Responses wire format: each task gets its own plan."""

    def __init__(self, plans: dict[str, Any]) -> None:
        self.plans = plans
        self.calls = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self._lock = threading.Lock()
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                payload = json.dumps(model.answer(json.loads(raw or b"{}"))).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The plan for the task the request names (fallbacks in place when it is a replan)."""
        messages = body.get("input") or []
        first = str(messages[0].get("content", "")) if messages else ""
        task = first.split("\n", 1)[0].removeprefix("Task: ").strip()
        plan = self.plans.get(task, {"goal": task, "steps": []})
        if "This is replan" in first:
            plan = with_fallbacks(plan)
        text = json.dumps(plan)
        sent = len(str(body.get("instructions", ""))) + sum(
            len(str(m.get("content", ""))) for m in messages
        )
        tokens_in, tokens_out = sent // 4 + 1, len(text) // 4 + 1
        with self._lock:
            self.calls += 1
            self.tokens_in += tokens_in
            self.tokens_out += tokens_out
        from runs.evals.wire import openai_response

        return openai_response(text, tokens_in=tokens_in, tokens_out=tokens_out, model=MODEL)


def with_fallbacks(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan with each step that declares a fallback replaced by it (a replanner's answer)."""
    steps = []
    for step in plan.get("steps", []):
        fallback = step.get("fallback")
        if fallback:
            step = {k: v for k, v in step.items() if k != "fallback"} | fallback
        steps.append(step)
    return {**plan, "steps": steps}


def recorded_plan(cassette: Path) -> Any:
    """The last plan a cassette holds (a model-planned task of the suite), or None."""
    if not cassette.is_file():
        return None
    for entry in reversed(json.loads(cassette.read_text())["interactions"]):
        for item in entry["body"].get("output", []):
            for part in item.get("content", []):
                if part.get("type") == "output_text":
                    return json.loads(part["text"])
    return None


def model_suite(loaded: Any) -> tuple[Any, dict[str, Any]]:
    """The suite with every task planned by the scripted model, and the plan for each task text."""
    cassettes = loaded.path.parent / "cassettes" / loaded.name if loaded.path else None
    plans: dict[str, Any] = {}
    tasks = []
    for task in loaded.tasks:
        plan = task.plan
        if plan is None and cassettes is not None:
            plan = recorded_plan(cassettes / f"{task.spec.name}.json")
        if plan is not None:  # else a task whose model faults answer every call
            plans[task.spec.text] = plan
        tasks.append(
            replace(
                task,
                planner="openai",
                model=MODEL,
                plan=None,
                approval_policy="always",
                max_replans=0 if task.planner == "manual" else task.max_replans,
            )
        )
    return replace(loaded, tasks=tasks), plans


@dataclass
class Pass:
    reuse: bool
    server_calls: int = 0
    recorded_calls: int = 0
    tokens: int = 0
    passed: dict[str, bool] = field(default_factory=dict)
    calls_by_task: dict[str, int] = field(default_factory=dict)
    succeeded: set[str] = field(default_factory=set)  # with its first plan, approved

    def rate(self, names: set[str] | None = None) -> float:
        chosen = [ok for name, ok in self.passed.items() if names is None or name in names]
        return sum(chosen) / len(chosen) if chosen else 0.0


def run_pass(loaded: Any, model: ScriptedModel, *, reuse: bool, workdir: Path) -> Pass:
    """One pass over the suite; model calls counted per task as the server received them."""
    from django.conf import settings
    from django.test.utils import override_settings

    from runs.evals.runner import RunOptions, suite_run
    from runs.models import Run

    threshold = settings.PLANNERWEB_PLAN_REUSE_MIN_SIMILARITY if reuse else 0
    figures = Pass(reuse=reuse)
    start = (model.calls, model.tokens_in + model.tokens_out)
    seen = [model.calls]
    texts = {task.spec.name: task.spec.text for task in loaded.tasks}

    def progress(done: int, total: int, result: Any) -> None:
        figures.calls_by_task[result.name] = model.calls - seen[0]
        seen[0] = model.calls
        figures.passed[result.name] = result.passed
        figures.recorded_calls += result.seen.model_calls
        run = Run.objects.filter(task__title=texts[result.name]).order_by("-pk").first()
        if result.seen.status == "succeeded" and run is not None and run.plans.count() == 1:
            figures.succeeded.add(result.name)

    with override_settings(
        PLANNERWEB_PLAN_REUSE_MIN_SIMILARITY=threshold,
        PLANNERWEB_OPENAI_BASE_URL=model.url,
        # Every plan is confirmed by its submitter, then approved (or rejected) by a reviewer.
        PLANNERWEB_CONFIRM_PLANS="always",
    ):
        suite_run(loaded, RunOptions(mode="live", workdir=workdir), progress)
    figures.server_calls = model.calls - start[0]
    figures.tokens = model.tokens_in + model.tokens_out - start[1]
    return figures


def reuse_passes(loaded: Any, workdir: Path) -> tuple[Pass, Pass]:
    """Pass 1 with reuse off, then pass 2 with reuse on, in the current database."""
    suite, plans = model_suite(loaded)
    model = ScriptedModel(plans)
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-scripted-model")
    try:
        first = run_pass(suite, model, reuse=False, workdir=workdir)
        second = run_pass(suite, model, reuse=True, workdir=workdir)
    finally:
        model.stop()
    return first, second


def main() -> None:
    # Run as a script (bench/ first on the path); the tests import this module and set up their own.
    from scratch_django import setup_scratch_django

    setup_scratch_django()
    from runs.evals.suite import suite_load

    loaded = suite_load(SUITE)
    workdir = Path(os.environ["PLANNERWEB_VAR_DIR"]) / "evaluate"
    first, second = reuse_passes(loaded, workdir)
    reusable = first.succeeded
    print(
        f"suite {SUITE}: {len(first.passed)} tasks planned by openai/{MODEL} (scripted, loopback)"
    )
    print(
        f"{'pass':<16}{'model calls':>12}{'recorded':>10}{'tokens':>9}{'pass rate':>11}"
        f"{'reusable':>10}"
    )
    for name, p in (("1 reuse off", first), ("2 reuse on", second)):
        print(
            f"{name:<16}{p.server_calls:>12}{p.recorded_calls:>10}{p.tokens:>9}"
            f"{p.rate():>11.0%}{p.rate(reusable):>10.0%}"
        )
    saved_calls = first.server_calls - second.server_calls
    saved_tokens = first.tokens - second.tokens
    hits = sorted(n for n in reusable if second.calls_by_task.get(n) == 0)
    print(
        f"saved: {saved_calls} model calls ({saved_calls / max(first.server_calls, 1):.0%}), "
        f"{saved_tokens} tokens ({saved_tokens / max(first.tokens, 1):.0%})"
    )
    print(
        f"reused without a model call: {len(hits)} of {len(reusable)} reusable tasks "
        f"(succeeded in pass 1 with their first plan, approved)"
    )
    missed = sorted(reusable - set(hits))
    print(f"reusable tasks the model planned again: {', '.join(missed) or 'none'}")
    changed = sorted(n for n, ok in first.passed.items() if ok != second.passed.get(n))
    print(f"tasks whose verdict changed with reuse: {', '.join(changed) or 'none'}")
    held = second.rate(reusable) >= first.rate(reusable)
    print(
        f"pass rate on the reusable tasks with reuse {'held' if held else 'DROPPED'}: "
        f"{first.rate(reusable):.0%} -> {second.rate(reusable):.0%}; whole suite "
        f"{first.rate():.0%} -> {second.rate():.0%}"
    )


if __name__ == "__main__":
    main()
