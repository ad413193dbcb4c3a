"""An agent step: a model calls tools from its allowed list in a bounded loop, then answers.

Every inner tool call is durable like a step: an ``AgentCall`` row (and an
``agent.tool_call`` event nested under the step) is written before the call and
again after it, keyed by the step's idempotency key. A step run again (a retry,
or another worker taking a crashed run over) replays the finished calls into
the conversation instead of repeating them, and counts their model calls' tokens
against the step's budget. A call caught mid-flight is made again only when its
tool is repeatable; otherwise the takeover escalates the step like any step that
may have partly run (``in_doubt``), and the call is made again only once a
reviewer retries the step (``calls_redo``).

1. Load the allowed tools (the step's ``tools`` that exist, are enabled, and are
   neither sensitive nor agents: those need a step, and a review, of their own).
2. Replay the step's recorded calls.
3. Loop at most ``max_iterations`` model calls, within ``max_tokens``: a decision
   ``done`` ends the step with its answer; a tool call outside the list is refused
   and recorded, and the model told; any other is made under its tool's timeout.
Cancellation reaches the awaited inner call (a shell tool's process group is
killed); model calls run in a helper thread, between them the loop stops.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from runs.dbthreads import in_db_thread
from runs.events import AgentToolCall
from runs.llmtools.answer import (
    LlmAsk,
    answer,
    call_model,
    model_name,
    provider_for,
    provider_name,
)
from runs.models import AgentCall, Tool, TranscriptEvent
from runs.planning.params import params_problems
from runs.redaction import Redactor
from runs.statemachine import NewEvent, append_events
from runs.textdata import storable_copy
from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from runs.tools.kinds.agent import DEFAULT_ITERATIONS, DEFAULT_TOKENS
from runs.tools.registry import call_timeout, invoke_tool, load_tool_specs

DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "thought": {"type": "string"},
        "tool": {"type": ["string", "null"]},
        "arguments": {"type": ["object", "null"]},
        "done": {"type": "boolean"},
        "answer": {},
    },
    "required": ["thought", "done"],
}
SYSTEM = (
    "You carry out one step of an automated plan with the tools listed, one call at a time. "
    'Answer with JSON {"thought", "tool", "arguments", "done", "answer"}: either a tool and '
    "its arguments (done false), or done true with your final answer. Use only the listed tools."
)
_OBSERVATION_CHARS = 4000
S = AgentCall.Status


@dataclass
class Loop:
    """One agent step's state: its conversation, its allowed tools, what it has spent."""

    run_id: int
    step: str
    key: str
    tools: dict[str, ToolSpec]
    allowed: list[str]
    messages: list[dict[str, str]] = field(default_factory=list)
    index: int = 0
    tokens: int = 0  # of the step's model calls, those replayed included


async def run_agent(
    spec: ToolSpec, params: dict[str, Any], *, run_id: int, step: str, key: str
) -> Any:
    """The step's answer after at most ``max_iterations`` model calls; ToolError otherwise."""
    instruction, allowed = _inputs(params)
    loop = await in_db_thread(lambda: _load(run_id, step, key, allowed))
    loop.messages.append({"role": "user", "content": _task(instruction, loop)})
    done = await in_db_thread(lambda: list(AgentCall.objects.filter(idempotency_key=key)))
    for row in done:
        await _replay(loop, row)
    config = spec.config
    limit = int(config.get("max_iterations") or DEFAULT_ITERATIONS)
    budget = int(config.get("max_tokens") or DEFAULT_TOKENS)
    name = provider_name(config)
    provider = provider_for(name, config)
    ask = LlmAsk(
        provider=name,
        model=model_name(config, name),
        system=SYSTEM,
        prompt="",
        schema=DECISION_SCHEMA,
        temperature=config.get("temperature"),
        max_tokens=2048,
        schema_name="decision",
    )
    model = ask.model or provider.default_model
    for turn in range(loop.index, limit):
        if loop.tokens > budget:
            raise ToolError(f"the agent spent its token budget ({loop.tokens} > {budget})")
        reply = await in_db_thread(
            functools.partial(
                call_model,
                provider,
                ask,
                model,
                list(loop.messages),
                run_id=run_id,
                step=step,
                attempt=turn + 1,
                purpose="agent",
            )
        )
        spent = reply.tokens_in + reply.tokens_out
        loop.tokens += spent
        decision = reply.data if isinstance(reply.data, dict) else None
        if decision is not None and decision.get("done") is True:
            return decision.get("answer")
        await _act(loop, reply.text, decision, spent)
    raise ToolError(f"the agent made {limit} model calls (max_iterations) without an answer")


def _inputs(params: dict[str, Any]) -> tuple[str, list[str]]:
    instruction, tools = params.get("instruction"), params.get("tools")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ToolConfigError("an agent step needs an instruction")
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        raise ToolConfigError("an agent step needs tools: a list of tool names")
    return instruction, list(tools)


def _load(run_id: int, step: str, key: str, allowed: list[str]) -> Loop:
    usable = _usable(allowed)
    return Loop(run_id=run_id, step=step, key=key, tools=usable, allowed=allowed)


def _usable(names: list[str]) -> dict[str, ToolSpec]:
    """The tools an agent may call among ``names``: enabled, neither sensitive nor agents."""
    specs = load_tool_specs(names)
    return {
        name: s
        for name, s in specs.items()
        if s.enabled and not s.sensitive and s.kind != Tool.Kind.AGENT
    }


def in_doubt(key: str) -> str:
    """Why an agent step left running may have partly run ("" when it may simply run again).

    A call of the step recorded as started, on a tool that is neither idempotent
    nor honours idempotency keys (or is no longer usable), may have taken effect:
    the takeover must not make it again blindly, nor fail the step, but escalate.
    """
    rows = list(AgentCall.objects.filter(idempotency_key=key, status=S.STARTED))
    if not rows:
        return ""
    tools = _usable([r.tool for r in rows])
    for row in rows:
        spec = tools.get(row.tool)
        if spec is None or not spec.repeatable:
            return (
                f"step {row.step_key} may have partly run: its agent's call {row.index} to "
                f"{row.tool!r} was in flight when its worker stopped, and that tool is neither "
                "idempotent nor honours idempotency keys (the calls before it finished and "
                "are not made again)"
            )
    return ""


def calls_redo(key: str) -> list[NewEvent]:
    """A reviewer retries an agent step: its calls caught mid-flight are made again on replay.

    Call inside the decision's transaction; returns the calls' events to append.
    """
    events = []
    for row in AgentCall.objects.filter(idempotency_key=key, status=S.STARTED):
        row.status = S.REDO
        row.save(update_fields=["status"])
        events.append(NewEvent(TranscriptEvent.Role.REVIEWER, _event_of(row)))
    return events


def _task(instruction: str, loop: Loop) -> str:
    lines = [f"Instruction: {instruction}", "", "Tools you may call:"]
    for name, s in sorted(loop.tools.items()):
        lines.append(f"- {name}: parameters {json.dumps(s.parameters_schema, sort_keys=True)}")
    if not loop.tools:
        lines.append("- (none usable: answer from what you know, or say why you cannot)")
    return "\n".join(lines)


async def _replay(loop: Loop, row: AgentCall) -> None:
    """A recorded call back into the conversation; one caught mid-flight is made again or fails."""
    loop.index = row.index + 1
    loop.tokens += row.tokens
    loop.messages.append({"role": "assistant", "content": row.decision})
    if row.status not in (S.STARTED, S.REDO):
        loop.messages.append({"role": "user", "content": _observation(row.status, row)})
        return
    spec = loop.tools.get(row.tool)
    if spec is None:
        raise ToolConfigError(
            f"the agent's call {row.index} to {row.tool!r} cannot be made again: "
            "the tool is missing, disabled or not usable by an agent"
        )
    if row.status == S.STARTED and not spec.repeatable:
        raise ToolConfigError(
            f"the agent's call {row.index} to {row.tool!r} was caught mid-flight and the tool "
            "is not idempotent: check by hand whether it took effect"
        )
    await _call(loop, row, spec, dict(row.params))


async def _act(loop: Loop, text: str, decision: dict[str, Any] | None, tokens: int) -> None:
    """Carry out one decision that is not ``done``: a tool call, or a refusal recorded."""
    tool = decision.get("tool") if decision else None
    args = decision.get("arguments") if decision else None
    args = args if isinstance(args, dict) else {}
    loop.messages.append({"role": "assistant", "content": text or "(empty)"})
    why = _refusal(loop, tool, args, decision)
    row = await in_db_thread(
        lambda: _record_start(loop, text, str(tool or ""), args, refused=why, tokens=tokens)
    )
    loop.index += 1
    if why:
        loop.messages.append({"role": "user", "content": f"Refused: {why}"})
        return
    await _call(loop, row, loop.tools[str(tool)], args)


def _refusal(loop: Loop, tool: Any, args: dict[str, Any], decision: Any) -> str:
    if decision is None:
        return "the answer is not the JSON object asked for"
    if not isinstance(tool, str) or not tool:
        return "give a tool and its arguments, or done: true with the answer"
    if tool not in loop.allowed:
        return f"{tool!r} is not in your list of tools ({', '.join(loop.allowed)})"
    spec = loop.tools.get(tool)
    if spec is None:
        return f"{tool!r} is not usable here (missing, disabled, sensitive or an agent)"
    problems = params_problems(spec.parameters_schema or {}, args, allow_references=False)
    if problems:
        return "invalid arguments: " + "; ".join(
            f"{'.'.join(map(str, p.location)) or 'arguments'}: {p.message}" for p in problems
        )
    return ""


async def _call(loop: Loop, row: AgentCall, spec: ToolSpec, args: dict[str, Any]) -> None:
    """Make one inner call under its tool's timeout, record how it ended, tell the model."""
    timeout = spec.timeout_seconds
    try:
        if spec.kind == Tool.Kind.LLM:
            result = await asyncio.wait_for(
                in_db_thread(lambda: answer(spec, args, run_id=loop.run_id, step=loop.step)),
                timeout,
            )
        else:
            key = f"{loop.key}:{row.index}"
            call = invoke_tool(spec, args, key)
            timeout = call_timeout(call, spec)
            result = await asyncio.wait_for(call, timeout)
        status, error = S.SUCCEEDED, ""
    except TimeoutError:
        result, status, error = None, S.FAILED, f"timed out after {timeout:g}s"
    except ToolError as exc:
        result, status, error = None, S.FAILED, exc.message
    await in_db_thread(lambda: _record_end(loop, row, status, result, error))
    loop.messages.append({"role": "user", "content": _observation(status, row)})


def _observation(status: str, row: AgentCall) -> str:
    if status == S.REFUSED:
        return f"Refused: {row.error}"
    if status == S.FAILED:
        return f"The call failed: {row.error}"
    text = json.dumps(row.result, ensure_ascii=False, default=str)
    return "Result: " + (text if len(text) <= _OBSERVATION_CHARS else text[:_OBSERVATION_CHARS])


@transaction.atomic
def _record_start(
    loop: Loop, decision: str, tool: str, args: dict[str, Any], *, refused: str, tokens: int
) -> AgentCall:
    """The write-ahead row of a call (or the record of a refusal), with its event."""
    red = Redactor(loop.run_id)
    row = AgentCall.objects.create(
        run_id=loop.run_id,
        step_key=loop.step,
        idempotency_key=loop.key,
        index=loop.index,
        decision=red.text(decision),
        tool=tool[:100],
        params=red.value(storable_copy(args)),
        status=S.REFUSED if refused else S.STARTED,
        error=refused,
        tokens=tokens,
    )
    _event(row)
    return row


@transaction.atomic
def _record_end(loop: Loop, row: AgentCall, status: str, result: Any, error: str) -> None:
    red = Redactor(loop.run_id)
    row.status, row.result, row.error = status, red.value(storable_copy(result)), red.text(error)
    row.save(update_fields=["status", "result", "error"])
    _event(row)


def _event(row: AgentCall) -> None:
    append_events(row.run_id, [NewEvent(TranscriptEvent.Role.EXECUTOR, _event_of(row))])


def _event_of(row: AgentCall) -> AgentToolCall:
    return AgentToolCall(
        step=row.step_key,
        index=row.index,
        tool=row.tool,
        status=row.status,
        params=row.params,
        result=row.result,
        error=row.error,
    )
