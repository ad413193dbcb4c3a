"""The python kind: sync and async callables, their errors, and bad paths."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from runs.tools.kinds.python import invoke, validate_config

HERE = __name__


def add(a: int, b: int) -> dict[str, Any]:
    return {"sum": a + b, "thread": threading.get_ident()}


async def async_add(a: int, b: int) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"sum": a + b, "thread": threading.get_ident()}


def boom(**params: Any) -> None:
    raise ValueError("bad input")


def refuses(**params: Any) -> None:
    raise ToolError("refused politely", details={"why": "policy"})


def keyed(label: str, idempotency_key: str) -> dict[str, Any]:
    return {"label": label, "key": idempotency_key}


async def async_keyed(*, label: str, idempotency_key: str | None = None) -> dict[str, Any]:
    return {"label": label, "key": idempotency_key}


def echo_all(**params: Any) -> dict[str, Any]:
    return dict(params)


class Namespace:
    @staticmethod
    def double(x: int) -> int:
        return 2 * x


NOT_CALLABLE = 42


async def call(path: str, params: dict[str, Any] | None = None) -> Any:
    return await invoke(ToolSpec(name="p", kind="python", config={"callable": path}), params or {})


@pytest.mark.asyncio
async def test_a_sync_callable_runs_in_a_worker_thread() -> None:
    result = await call(f"{HERE}.add", {"a": 2, "b": 3})
    assert result["sum"] == 5
    assert result["thread"] != threading.get_ident()


@pytest.mark.asyncio
async def test_a_coroutine_function_is_awaited_on_the_loop() -> None:
    result = await call(f"{HERE}.async_add", {"a": 2, "b": 3})
    assert result == {"sum": 5, "thread": threading.get_ident()}


@pytest.mark.asyncio
async def test_attributes_of_a_module_attribute_resolve() -> None:
    assert await call(f"{HERE}.Namespace.double", {"x": 4}) == 8


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["keyed", "async_keyed"])
async def test_a_callable_declaring_idempotency_key_receives_the_steps_key(name: str) -> None:
    spec = ToolSpec(name="p", kind="python", config={"callable": f"{HERE}.{name}"})
    result = await invoke(spec, {"label": "x"}, "2d1c3b4a-0000-4000-8000-000000000001")
    assert result == {"label": "x", "key": "2d1c3b4a-0000-4000-8000-000000000001"}
    # A param of that name from the plan never stands in for the key.
    forged = await invoke(spec, {"label": "x", "idempotency_key": "forged"}, "real")
    assert forged["key"] == "real"


@pytest.mark.asyncio
async def test_a_callable_without_that_parameter_never_sees_the_key() -> None:
    spec = ToolSpec(name="p", kind="python", config={"callable": f"{HERE}.echo_all"})
    assert await invoke(spec, {"a": 1}, "some-key") == {"a": 1}


@pytest.mark.asyncio
async def test_an_exception_becomes_a_tool_error_named_by_its_type() -> None:
    with pytest.raises(ToolError, match=r"^ValueError: bad input$") as caught:
        await call(f"{HERE}.boom")
    assert type(caught.value) is ToolError


@pytest.mark.asyncio
async def test_wrong_params_are_a_tool_error() -> None:
    with pytest.raises(ToolError, match="TypeError: .*unexpected keyword argument 'c'"):
        await call(f"{HERE}.add", {"a": 1, "b": 2, "c": 3})


@pytest.mark.asyncio
async def test_a_tool_error_raised_by_the_callable_passes_through() -> None:
    with pytest.raises(ToolError, match="^refused politely$") as caught:
        await call(f"{HERE}.refuses")
    assert caught.value.details == {"why": "policy"}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nosuchpackage.mod.func", "no module 'nosuchpackage'"),
        ("runs.tools.builtin.nothing", "has no nothing"),
        ("runs.tools.nosuchmodule.func", "has no nosuchmodule.func"),
        (f"{HERE}.NOT_CALLABLE", "is not callable"),
        ("not a path", "dotted path"),
        ("justaname", "dotted path"),
    ],
)
@pytest.mark.asyncio
async def test_an_unimportable_path_is_a_config_error(path: str, message: str) -> None:
    with pytest.raises(ToolConfigError, match=message):
        await call(path)
    assert any(message in p for p in validate_config({"callable": path}))


def test_config_validation_wants_only_a_callable() -> None:
    assert validate_config({"callable": "runs.tools.builtin.echo"}) == []
    assert validate_config({}) == [
        "callable is required (a dotted path like 'package.module.function')"
    ]
    assert validate_config({"callable": "runs.tools.builtin.echo", "x": 1}) == ["unknown key 'x'"]
