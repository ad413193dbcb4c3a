"""One step of a run: parameters, result, stdout and stderr, verdict, attempts, its events.

The run page's step table squeezes these into a row; this page gives each its room.
Long output is cut on the page (``OUTPUT_SHOWN`` characters) and downloadable whole.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from runs import selectors
from runs.models import Step
from runs.permissions import can_view_runs, role_required
from runs.views.detail import event_rows

# Characters of stdout or stderr shown on the page; the download has them all.
OUTPUT_SHOWN = 20_000
STREAMS = ("stdout", "stderr")


def _get_step(run_id: int, step_id: int) -> Step:
    try:
        return Step.objects.select_related("tool", "plan").get(pk=step_id, run_id=run_id)
    except Step.DoesNotExist:
        raise Http404("No such step in this run.") from None


def _streams(step: Step) -> dict[str, str]:
    """The step's stdout and stderr when its result holds them (shell tools do)."""
    result = step.result if isinstance(step.result, dict) else {}
    return {name: result[name] for name in STREAMS if isinstance(result.get(name), str)}


def _attempts(events: list[Any]) -> list[dict[str, Any]]:
    """Each attempt that ended in an error: its number and the error, from the step's events."""
    tried = []
    for e in events:
        p = e.payload or {}
        if e.kind == "step.retrying":
            tried.append({"attempt": p.get("attempt", 0) - 1, "error": p.get("error", "")})
        elif e.kind == "step.status" and p.get("to_status") == "failed":
            tried.append({"attempt": p.get("attempt", 0), "error": p.get("error", "")})
    return tried


@require_GET
@role_required(can_view_runs)
def step_detail(request: HttpRequest, run_id: int, step_id: int) -> HttpResponse:
    """Everything about one step, each part in full (output cut at ``OUTPUT_SHOWN``)."""
    step = _get_step(run_id, step_id)
    events = list(selectors.step_events(step))
    streams = {
        name: {"text": text[:OUTPUT_SHOWN], "cut": max(len(text) - OUTPUT_SHOWN, 0)}
        for name, text in _streams(step).items()
    }
    shown = step.result
    if isinstance(shown, dict) and streams:
        shown = {k: v for k, v in shown.items() if k not in streams}
    return render(
        request,
        "runs/step_detail.html",
        {
            "step": step,
            "params_json": json.dumps(step.params, indent=2, ensure_ascii=False, default=str),
            "result_json": (
                json.dumps(shown, indent=2, ensure_ascii=False, default=str)
                if step.result is not None
                else ""
            ),
            "streams": streams,
            "attempts": _attempts(events),
            "events": event_rows(events),
            "duration": (
                step.finished_at - step.started_at if step.started_at and step.finished_at else None
            ),
        },
    )


@require_GET
@role_required(can_view_runs)
def step_output(request: HttpRequest, run_id: int, step_id: int, stream: str) -> HttpResponse:
    """A step's whole stdout or stderr as a text download."""
    if stream not in STREAMS:
        raise Http404("No such output.")
    text = _streams(_get_step(run_id, step_id)).get(stream)
    if text is None:
        raise Http404("This step has no such output.")
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="run-{run_id}-step-{step_id}-{stream}.txt"'
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
