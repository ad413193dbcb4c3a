"""A suite run printed: the results table, the JSON report and the JUnit XML file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from runs.evals.metrics import Summary
from runs.evals.runner import TaskResult
from runs.redaction import redact_text


def _row(r: TaskResult) -> list[str]:
    outcome = r.seen.status + (f" ({r.seen.cause})" if r.seen.cause else "")
    return [
        r.name + (f" #{r.attempt}" if r.attempt > 1 else ""),
        "PASS" if r.passed else "FAIL",
        outcome,
        str(r.seen.steps),
        str(r.seen.tokens),
        f"{r.seen.seconds:.2f}s",
        ",".join(r.faults) or "-",
    ]


def table(results: list[TaskResult], summary: Summary) -> str:
    """The results as a fixed-width table, each failure under its task, then the metrics."""
    head = ["task", "result", "outcome", "steps", "tokens", "time", "faults"]
    rows = [_row(r) for r in results]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r, row in zip(results, rows, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines.extend(f"    - {redact_text(f)}" for f in r.failures)
    m = summary.metrics
    lines.append("")
    lines.append(
        f"passed {m['passed']}/{m['tasks']} ({m['pass_rate']:.0%}); steps/task {m['steps_per_task']}; "
        f"tool success {_pct(m['tool_success_rate'])}; evaluator disagreement "
        f"{_pct(m['disagreement_rate'])}; escalations {_pct(m['escalation_rate'])} "
        f"{m['escalations_by_cause'] or ''}; tokens {m['tokens']}; cost ${m['cost']}; "
        f"mean latency {m['latency_ms_mean']} ms"
    )
    lines.extend(f"BAND BREACHED: {b}" for b in summary.breaches)
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def as_json(suite: str, results: list[TaskResult], summary: Summary) -> dict[str, Any]:
    return {
        "suite": suite,
        "ok": summary.ok,
        "metrics": summary.metrics,
        "breaches": summary.breaches,
        "tasks": [
            {
                "name": r.name,
                "attempt": r.attempt,
                "passed": r.passed,
                "planner": r.planner,
                "outcome": r.seen.status,
                "cause": r.seen.cause,
                "tools": r.seen.tools,
                "steps": r.seen.steps,
                "tokens": r.seen.tokens,
                "cost": str(r.seen.cost),
                "seconds": round(r.seen.seconds, 3),
                "faults": r.faults,
                "injected": r.injected,
                "cassette_misses": r.misses,
                "model_calls": r.seen.model_calls,
                "network_calls": r.network_calls,
                "failures": [redact_text(f) for f in r.failures],
            }
            for r in results
        ],
    }


def write_json(path: Path, suite: str, results: list[TaskResult], summary: Summary) -> None:
    path.write_text(json.dumps(as_json(suite, results, summary), indent=2) + "\n", encoding="utf-8")


def write_junit(path: Path, suite: str, results: list[TaskResult], summary: Summary) -> None:
    """One ``testsuite`` with a ``testcase`` per task attempt; a band breach is a failed case too."""
    failed = sum(not r.passed for r in results) + len(summary.breaches)
    total_time = sum(r.seen.seconds for r in results)
    root = ET.Element("testsuites")
    node = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results) + len(summary.breaches)),
        failures=str(failed),
        errors="0",
        time=f"{total_time:.3f}",
    )
    for r in results:
        name = r.name + (f"[{r.attempt}]" if r.attempt > 1 else "")
        case = ET.SubElement(
            node, "testcase", classname=f"evals.{suite}", name=name, time=f"{r.seen.seconds:.3f}"
        )
        if not r.passed:
            text = "\n".join(redact_text(f) for f in r.failures)
            ET.SubElement(case, "failure", message=text.splitlines()[0][:500]).text = text
    for breach in summary.breaches:
        case = ET.SubElement(node, "testcase", classname=f"evals.{suite}.bands", name=breach)
        ET.SubElement(case, "failure", message=breach).text = breach
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
