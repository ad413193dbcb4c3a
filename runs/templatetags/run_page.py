"""The run page's repeated markup: step rows, transcript rows, the plan graph's nodes and edges.

``{{ rows|step_rows }}``, ``{{ events|transcript_rows }}``, ``{{ graph|graph_edges }}``
and ``{{ graph_nodes|graph_nodes }}`` build in Python what a ``{% for %}`` over
template markup would: for a run of 500 steps and 300 transcript rows, that loop
costs ~80 ms in the template engine (about twenty variable lookups, filters and
escapes a row), a 300-step graph another ~60 ms, which would put the page's p95
over its 100 ms target (bench/pages.py). The markup is the same, the one ``static/runs/run.js``
reads and updates in place (``data-step-*``, ``data-node-step-id``, ``.mark``,
``.label``), and every value is escaped as the template would escape it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from typing import Any

from django import template
from django.template.defaultfilters import floatformat
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from runs.graph import LABEL_X, label_lines
from runs.pools import pool_wait_text
from runs.selectors import lock_wait_text

register = template.Library()

_NONE = "—"


def _local(value: datetime, tz: tzinfo) -> datetime:
    """What the ``date`` filter formats: the time in the current time zone (``tz``, looked up once)."""
    return value.astimezone(tz) if value.utcoffset() is not None else value


def _clock(value: datetime | None, tz: tzinfo) -> str:
    """``H:M:S.mmm`` (to the millisecond, as the timeline), or "—"."""
    if value is None:
        return _NONE
    local = _local(value, tz)
    return local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"


@register.filter(is_safe=True)
def step_rows(rows: Iterable[Any]) -> SafeString:
    """The ``<tr>`` of each step row (``runs.views.detail.StepRow``) of a step table."""
    tz = timezone.get_current_timezone()
    return mark_safe("".join(_step_row(number, row, tz) for number, row in enumerate(rows, 1)))


def _read_only(step: Any) -> str:
    """Whether the step's tool only reads (the cancel form asks only about the others).

    The run page reads steps with their tool (``select_related``): no query per row.
    """
    return "true" if step.tool is not None and step.tool.read_only else "false"


def _step_row(number: int, row: Any, tz: tzinfo) -> str:
    step = row.step
    key, status = escape(step.key), escape(step.status)
    started = (
        f' data-started-at="{_local(step.started_at, tz).isoformat()}"' if step.started_at else ""
    )
    if step.finished_at:
        started += f' data-finished-at="{_local(step.finished_at, tz).isoformat()}"'

    about = ""
    if step.description:
        about += f'<div class="muted">{escape(step.description)}</div>'
    if step.depends_on:
        after = ", ".join(escape(str(k)) for k in step.depends_on)
        about += f'<div class="muted">after {after}</div>'
    if step.undoes:
        about += f'<div class="muted" data-undoes>undoes {escape(step.undoes)}</div>'
    undone_by = getattr(step, "undone_by", None)
    if undone_by:
        by = ", ".join(escape(k) for k in undone_by)
        about += f'<div class="muted" data-undone-by>undone by {by}</div>'
    waiting = lock_wait_text(step)
    lock_wait = (
        f'<div class="muted lock-wait" data-step-lock>{escape(waiting)}</div>' if waiting else ""
    )
    pooled = pool_wait_text(step)
    if pooled:
        lock_wait += f'<div class="muted pool-wait" data-step-pool>{escape(pooled)}</div>'

    if step.verdict:
        verdict = escape(step.verdict)
        verdict = f'<span class="verdict verdict-{verdict}">{verdict}</span>'
        if step.verdict_reason:
            verdict += f'<div class="muted">{escape(step.verdict_reason)}</div>'
    else:
        verdict = _NONE
    took = (
        f"{floatformat(row.duration.total_seconds(), 3)} s" if row.duration is not None else _NONE
    )
    output = ""
    if step.error:
        is_open = " open" if step.status == "failed" else ""
        output += (
            f'<details class="error"{is_open}><summary>error</summary>'
            f"<pre>{escape(step.error)}</pre></details>"
        )
    if row.result_json:
        output += (
            f"<details><summary>result</summary><pre>{escape(row.result_json)}</pre></details>"
        )
    output += _agent_calls(getattr(step, "agent_calls", None))
    return (
        f'<tr data-step-id="{step.pk}" data-step-key="{key}" data-phase="{escape(step.phase)}"'
        f' data-status="{status}" data-read-only="{_read_only(step)}"{started}>'
        f'<td class="num">{number}</td>'
        f'<td><a href="/runs/{step.run_id}/steps/{step.pk}/" data-step-link><code>{key}</code></a>'
        f"{about}</td>"
        f"<td><code>{escape(step.tool_name)}</code></td>"
        f"<td>{escape(step.phase)}</td>"
        f'<td class="step-status status-{status}" data-step-status><span class="mark">'
        f'{escape(row.mark)}</span> <span class="label">{status}</span>{lock_wait}</td>'
        f"<td data-step-verdict>{verdict}</td>"
        f'<td class="num" data-step-attempts>{step.attempts}</td>'
        f"<td data-step-started>{_clock(step.started_at, tz)}</td>"
        f"<td data-step-finished>{_clock(step.finished_at, tz)}</td>"
        f'<td class="num" data-step-took>{took}</td>'
        f"<td><details><summary>params</summary><pre>{escape(row.params_json)}</pre>"
        f'<div class="muted" data-step-idempotency-key>idempotency key '
        f"<code>{step.idempotency_key}</code></div></details></td>"
        f"<td data-step-result>{output}</td>"
        "</tr>\n"
    )


def _agent_calls(calls: list[Any] | None) -> str:
    """An agent step's inner tool calls, in order, each with how it ended."""
    if not calls:
        return ""
    items = "".join(
        f"<li><code>{escape(c.tool or '(none)')}</code> {escape(c.status)}"
        + (f': <span class="muted">{escape(c.error)}</span>' if c.error else "")
        + "</li>"
        for c in calls
    )
    return (
        f"<details data-agent-calls><summary>agent calls ({len(calls)})</summary>"
        f'<ol start="0">{items}</ol></details>'
    )


@register.filter(is_safe=True)
def transcript_rows(events: Iterable[Any]) -> SafeString:
    """The ``<tr data-seq>`` of each transcript row (``runs.views.detail.EventRow``)."""
    tz = timezone.get_current_timezone()
    return mark_safe("".join(_event_row(e, tz) for e in events))


def _event_row(event: Any, tz: tzinfo) -> str:
    at = _local(event.at, tz)
    return (
        f'<tr data-seq="{event.seq}"><td class="num">{event.seq}</td>'
        f'<td><time datetime="{at.isoformat()}">{_clock(event.at, tz)}</time></td>'
        f"<td>{escape(event.role)}</td><td><code>{escape(event.kind)}</code></td>"
        f"<td>{escape(event.summary)}</td></tr>\n"
    )


def _whole(value: float) -> str:
    """``{{ value|floatformat:0 }}`` of a coordinate: rounded half up, without the l10n machinery."""
    return str(Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@register.filter(is_safe=True)
def graph_edges(graph: Any) -> SafeString:
    """The ``<path class="edge">`` of each dependency of a ``runs.graph.Graph``."""
    return mark_safe(
        "".join(
            f'<path class="edge{" undo" if e.kind == "undo" else ""}" d="{escape(e.path)}"'
            f' marker-end="url(#arrow)" data-edge="{escape(e.source)}→{escape(e.target)}"/>'
            for e in graph.edges
        )
    )


@register.filter(is_safe=True)
def graph_nodes(views: Iterable[Any]) -> SafeString:
    """The ``<g class="node">`` of each node view (``.node``: where; ``.row``: its step, mark)."""
    return mark_safe("".join(_node(v.node, v.row.step, v.row.mark) for v in views))


def _node(node: Any, step: Any, mark: str) -> str:
    key = str(step.key)
    undoes = getattr(step, "undoes", "")
    rollback = getattr(step, "phase", "main") == "rollback"
    about = f", undoes {undoes}" if undoes else (", rollback" if rollback else "")
    phase = ' data-phase="rollback"' if rollback else ""
    lines = label_lines(key)
    # One line sits on the box's middle, two lines share it (12 px text, 14 px apart).
    first_y = 25 if len(lines) == 1 else 18
    label = "".join(
        f'<tspan x="{LABEL_X}" y="{first_y + 14 * i}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    return (
        f'<g class="node status-{escape(step.status)}" data-node-step-id="{step.pk}"{phase}'
        f' transform="translate({_whole(node.x)},{_whole(node.y)})">'
        f"<title>{escape(key)} ({escape(step.tool_name)}{escape(about)})</title>"
        f'<rect width="{_whole(node.width)}" height="{_whole(node.height)}" rx="6"/>'
        f'<text class="mark" x="15" y="25" text-anchor="middle">{escape(mark)}</text>'
        f'<text class="label" data-full="{escape(key)}">{label}</text>'
        "</g>\n"
    )


@register.filter
def precise_time(value: datetime | None) -> str:
    """``2026-12-04 16:31:07.482``: the run's times to the millisecond, in the current time zone."""
    if value is None:
        return _NONE
    local = _local(value, timezone.get_current_timezone())
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"


@register.filter
def elapsed(start: datetime | None, end: datetime | None) -> str:
    """``1 min 02.345 s`` from ``start`` to ``end`` (the run page's duration, to the millisecond)."""
    if start is None or end is None:
        return _NONE
    return elapsed_text((end - start).total_seconds())


def elapsed_text(seconds: float) -> str:
    """Seconds as ``0.412 s``, ``1 min 02.345 s`` or ``2 h 03 min 04.500 s`` (the JS says the same)."""
    seconds = max(seconds, 0.0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 1:
        return f"{int(hours)} h {int(minutes):02d} min {secs:06.3f} s"
    if minutes >= 1:
        return f"{int(minutes)} min {secs:06.3f} s"
    return f"{secs:.3f} s"
