"""Python-kind tools that ship with plannerweb, for demos, benchmarks and tests.

Use them as ``{"callable": "runs.tools.builtin.<name>"}``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runs.tools.base import ToolError


async def noop(**params: Any) -> dict[str, Any]:
    """Return at once: measures the executor's own per-step overhead."""
    return {"ok": True}


async def sleep(ms: float = 50, **params: Any) -> dict[str, Any]:
    """Wait ``ms`` milliseconds without blocking the loop: a stand-in for slow I/O."""
    await asyncio.sleep(ms / 1000)
    return {"ok": True, "slept_ms": ms}


def echo(**params: Any) -> dict[str, Any]:
    """Return the params: shows what a step actually received."""
    return dict(params)


def fail(message: str = "failed on purpose", **params: Any) -> NoReturn:
    """Always fail: exercises retries, rollback and escalation."""
    raise ToolError(message)


def current_time(timezone: str = "UTC", **params: Any) -> dict[str, Any]:
    """The time now in an IANA zone: the tool that answers "What time is it?" in one call."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolError(
            f"unknown time zone {timezone!r}: use an IANA name like Europe/Paris"
        ) from exc
    now = datetime.now(zone)
    return {
        "time": now.strftime("%H:%M:%S"),
        "date": now.date().isoformat(),
        "timezone": timezone,
        "iso": now.isoformat(),
    }
