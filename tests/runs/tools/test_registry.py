"""The registry: dispatch by kind, config and schema validation, loading specs; the builtins."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from runs.models import Tool
from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from runs.tools.registry import (
    invoke_tool,
    load_tool_specs,
    validate_parameters_schema,
    validate_tool_config,
)


def builtin(name: str, params: dict[str, Any] | None = None) -> Any:
    spec = ToolSpec(name=name, kind="python", config={"callable": f"runs.tools.builtin.{name}"})
    return asyncio.run(invoke_tool(spec, params or {}))


def test_invoke_tool_dispatches_on_the_kind() -> None:
    spec = ToolSpec(name="e", kind="shell", config={"argv": ["{python}", "-c", "print(1)"]})
    assert asyncio.run(invoke_tool(spec, {}))["stdout"] == "1\n"


def test_an_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ToolConfigError, match="unknown tool kind 'ftp'"):
        asyncio.run(invoke_tool(ToolSpec(name="x", kind="ftp"), {}))
    assert validate_tool_config("ftp", {}) == [
        "unknown tool kind 'ftp' (known: shell, http, python, llm, agent, mcp)"
    ]


def test_validate_tool_config_passes_the_schema_to_the_kind() -> None:
    schema = {"type": "object", "properties": {"db": {"type": "string"}}}
    assert validate_tool_config("shell", {"argv": ["ls", "{db}"]}, parameters_schema=schema) == []
    assert validate_tool_config("shell", {"argv": ["ls", "{x}"]}, parameters_schema=schema) == [
        "argv[1] uses {x}, which is not a parameter"
    ]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "array"}, '"type": "object"'),
        ([], "must be an object"),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "properties/a/type"),
        ({"type": "object", "required": "a"}, "required"),
    ],
)
def test_a_parameters_schema_must_be_a_valid_object_schema(schema: Any, message: str) -> None:
    problems = validate_parameters_schema(schema)
    assert any(message in p for p in problems), problems


def test_a_valid_object_schema_has_no_problems() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert validate_parameters_schema(schema) == []


def test_load_tool_specs_includes_disabled_tools_and_filters_by_name(db: None) -> None:
    Tool.objects.create(name="on", kind="python", config={"callable": "runs.tools.builtin.noop"})
    Tool.objects.create(
        name="off", kind="python", config={"callable": "x.y"}, enabled=False, timeout_seconds=5
    )
    specs = load_tool_specs()
    assert set(specs) == {"on", "off"}
    assert specs["off"].enabled is False
    assert specs["off"].timeout_seconds == 5.0
    assert set(load_tool_specs(["off", "missing"])) == {"off"}


def test_builtin_noop_returns_at_once() -> None:
    started = time.monotonic()
    assert builtin("noop", {"anything": 1}) == {"ok": True}
    assert time.monotonic() - started < 1


def test_builtin_sleep_waits_the_given_milliseconds() -> None:
    started = time.monotonic()
    assert builtin("sleep", {"ms": 100})["ok"] is True
    assert time.monotonic() - started >= 0.1


def test_builtin_echo_returns_its_params() -> None:
    assert builtin("echo", {"a": [1, 2], "b": None}) == {"a": [1, 2], "b": None}


def test_builtin_fail_raises_a_tool_error() -> None:
    with pytest.raises(ToolError, match="^failed on purpose$"):
        builtin("fail")
    with pytest.raises(ToolError, match="^custom$"):
        builtin("fail", {"message": "custom"})
