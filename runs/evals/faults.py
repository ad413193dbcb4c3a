"""Injected faults: a tool fails, times out or answers malformed output at call k; the model
answers malformed JSON, a refusal, a 429 or a 500 at call k.

A fault is written ``"tool:fail@2"`` or ``"model:429@1x3"`` (target, kind, the 1-based
call it hits, and how many calls in a row, default one), or as a mapping with the same
fields. A timeout states the deadline the hit call gets (``"tool:timeout@1/0.5s"``,
default 0.2 s): the call blocks past it, so the executor's own deadline expires and
its retries and failure handling act, quickly. Tool faults are served by ``ToolFaults``
(installed as the registry's interceptor for one run); model faults by the model proxy
(``cassettes``), on the wire, so the real SDK and provider code handle them.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runs.tools.base import ToolError, ToolSpec
from runs.tools.registry import Deadlined

TOOL_KINDS = ("fail", "timeout", "malformed")
MODEL_KINDS = ("malformed", "refusal", "429", "500")
_TEXT = re.compile(
    r"^(tool|model):([a-z0-9]+)@([0-9]{1,4})(?:x([0-9]{1,4}))?(?:/([0-9]{1,2}(?:\.[0-9]{1,3})?)s)?$"
)
TIMEOUT_SECONDS = 0.2  # the deadline of a call an injected timeout hits, unless stated
# How much longer than its deadline an injected timeout blocks: a deadline that never
# fires shows as a failed call, not as a run that hangs.
OVERRUN = 25


class FaultSpecError(ValueError):
    pass


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: Literal["tool", "model"]
    kind: str
    at: int = Field(ge=1, le=10_000)
    times: int = Field(default=1, ge=1, le=10_000)
    seconds: float = Field(default=TIMEOUT_SECONDS, gt=0, le=60)  # a timeout's deadline

    def hits(self, call: int) -> bool:
        return self.at <= call < self.at + self.times

    def __str__(self) -> str:
        text = f"{self.target}:{self.kind}@{self.at}" + (f"x{self.times}" if self.times > 1 else "")
        return text + (f"/{self.seconds:g}s" if self.seconds != TIMEOUT_SECONDS else "")


def parse_fault(value: Any) -> FaultSpec:
    """A FaultSpec from its text form or a mapping; FaultSpecError says what is wrong."""
    if isinstance(value, FaultSpec):
        return value
    if isinstance(value, str):
        match = _TEXT.match(value.strip())
        if not match:
            raise FaultSpecError(
                f"fault {value!r}: write target:kind@call[xtimes][/seconds s], "
                "e.g. tool:fail@2, model:429@1 or tool:timeout@1/0.5s"
            )
        target, kind, at, times, seconds = match.groups()
        value = {"target": target, "kind": kind, "at": int(at), "times": int(times or 1)}
        if seconds is not None:
            value["seconds"] = float(seconds)
    try:
        spec = FaultSpec.model_validate(value)
    except ValidationError as exc:
        raise FaultSpecError(f"fault {value!r}: {exc.errors()[0]['msg']}") from None
    kinds = TOOL_KINDS if spec.target == "tool" else MODEL_KINDS
    if spec.kind not in kinds:
        raise FaultSpecError(f"fault {spec}: a {spec.target} fault is one of {', '.join(kinds)}")
    if spec.seconds != TIMEOUT_SECONDS and spec.kind != "timeout":
        raise FaultSpecError(f"fault {spec}: only a timeout has a deadline in seconds")
    return spec


def parse_faults(text: str) -> list[FaultSpec]:
    """Comma-separated faults, as ``--faults`` takes them."""
    return [parse_fault(part) for part in text.split(",") if part.strip()]


async def _fail(spec: ToolSpec, fault: FaultSpec) -> Any:
    raise ToolError(f"injected fault: {spec.name} failed", details={"injected": "fail"})


async def _block(spec: ToolSpec, fault: FaultSpec) -> Any:
    # Outlives its deadline: the caller's deadline cancels it long before this ends.
    await asyncio.sleep(fault.seconds * OVERRUN)
    raise ToolError(
        f"injected fault: {spec.name} outlived its {fault.seconds:g}s deadline uncancelled",
        details={"injected": "timeout"},
    )


async def _malformed(spec: ToolSpec, fault: FaultSpec) -> Any:
    return {"injected": "malformed", "value": float("nan")}  # not JSON: the engine refuses it


def _served(spec: ToolSpec, fault: FaultSpec) -> Coroutine[Any, Any, Any] | Deadlined:
    if fault.kind == "timeout":
        return Deadlined(_block(spec, fault), fault.seconds)
    return (_fail if fault.kind == "fail" else _malformed)(spec, fault)


class ToolFaults:
    """Counts one run's tool calls (retries included) and serves the faults due at each."""

    def __init__(self, faults: list[FaultSpec]) -> None:
        self.faults = [f for f in faults if f.target == "tool"]
        self.calls = 0
        self.injected: list[str] = []
        self._lock = threading.Lock()

    def __call__(
        self, spec: ToolSpec, params: dict[str, Any]
    ) -> Coroutine[Any, Any, Any] | Deadlined | None:
        with self._lock:
            self.calls += 1
            call = self.calls
            fault = next((f for f in self.faults if f.hits(call)), None)
            if fault is not None:
                self.injected.append(f"{fault.kind} at tool call {call} ({spec.name})")
        return _served(spec, fault) if fault is not None else None
