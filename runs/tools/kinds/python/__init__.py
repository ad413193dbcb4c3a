"""The python kind: call ``func(**params)`` for a dotted path in ``config["callable"]``.

Coroutine functions are awaited on the executor's loop; plain functions run in a
worker thread (``asyncio.to_thread``) so a slow or blocking one never stalls the
other steps. A cancelled thread cannot be stopped: it finishes in the background,
so long-running sync callables should check their own deadline.

A function that declares a parameter named ``idempotency_key`` gets the step's
key in it (the same on every call for one step of one run, retries and crash
takeovers included), whatever the step's params say. Functions without that
parameter never see it, ``**kwargs`` ones included.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
import threading
from collections.abc import Callable
from typing import Any

from runs.tools.base import ToolConfigError, ToolError, ToolSpec

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_cache: dict[str, Callable[..., Any]] = {}
_cache_lock = threading.Lock()
# What the admin's config field says about this kind.
CONFIG_HELP = (
    '"callable": the dotted path of a function called with the step\'s parameters as '
    "keyword arguments (and the step's idempotency key as idempotency_key, when the "
    'function declares that parameter). Example: {"callable": "package.module.function"}'
)
KEY_ARGUMENT = "idempotency_key"
_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def resolve(path: object) -> Callable[..., Any]:
    """Import ``package.module.attr[.attr]`` once; ToolConfigError when it cannot be found."""
    # Only checked paths are cached: a hit needs no check.
    func = _cache.get(path) if isinstance(path, str) else None
    if func is not None:
        return func
    if not isinstance(path, str) or not _DOTTED.match(path):
        raise ToolConfigError(
            f"callable must be a dotted path like 'package.module.function', not {path!r}"
        )
    parts = path.split(".")
    with _cache_lock:
        # The longest importable module prefix, then attributes (allows Class.method).
        for split in range(len(parts) - 1, 0, -1):
            module_name = ".".join(parts[:split])
            try:
                obj: Any = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                    continue  # this prefix is not a module: try a shorter one
                raise ToolConfigError(f"cannot import {path!r}: {exc}") from exc
            except Exception as exc:  # the module itself is broken
                raise ToolConfigError(
                    f"cannot import {path!r}: {type(exc).__name__}: {exc}"
                ) from exc
            try:
                for attr in parts[split:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                raise ToolConfigError(
                    f"cannot import {path!r}: {module_name} has no {'.'.join(parts[split:])}"
                ) from None
            if not callable(obj):
                raise ToolConfigError(f"{path!r} is not callable")
            _cache[path] = obj
            return obj
    raise ToolConfigError(f"cannot import {path!r}: no module {parts[0]!r}")


def validate_config(config: dict[str, Any], *, parameters_schema: dict | None = None) -> list[str]:
    """Problems with a python config: the key set, and whether the callable imports."""
    if not isinstance(config, dict):
        return ["config must be an object"]
    problems = [f"unknown key {k!r}" for k in sorted(set(config) - {"callable"})]
    if "callable" not in config:
        problems.append("callable is required (a dotted path like 'package.module.function')")
        return problems
    try:
        resolve(config["callable"])
    except ToolConfigError as exc:
        problems.append(exc.message)
    return problems


async def invoke(spec: ToolSpec, params: dict[str, Any], idempotency_key: str | None = None) -> Any:
    """Call the function; its exceptions become ToolError, its own ToolError passes through."""
    path = spec.config.get("callable") if isinstance(spec.config, dict) else None
    func = resolve(path)
    if idempotency_key is not None and _takes_key(func):
        params = {**params, KEY_ARGUMENT: idempotency_key}
    try:
        if _is_coroutine_function(func):
            return await func(**params)
        result = await asyncio.to_thread(func, **params)
        if inspect.isawaitable(result):  # e.g. a partial of a coroutine function
            result = await result
        return result
    except ToolError:
        raise
    except Exception as exc:
        raise ToolError(
            f"{type(exc).__name__}: {exc}", details={"exception": type(exc).__name__}
        ) from exc


_coroutine_functions: dict[Callable[..., Any], bool] = {}
_key_takers: dict[Callable[..., Any], bool] = {}


def _takes_key(func: Callable[..., Any]) -> bool:
    """Whether ``func`` declares an ``idempotency_key`` parameter (remembered per callable)."""
    known = _key_takers.get(func)
    if known is None:
        try:
            parameter = inspect.signature(func).parameters.get(KEY_ARGUMENT)
        except (TypeError, ValueError):  # no signature to read (some builtins)
            parameter = None
        known = _key_takers[func] = parameter is not None and parameter.kind in _KEYWORD_KINDS
    return known


def _is_coroutine_function(func: Callable[..., Any]) -> bool:
    """``inspect.iscoroutinefunction``, remembered per callable (asked on every step)."""
    known = _coroutine_functions.get(func)
    if known is None:
        known = _coroutine_functions[func] = inspect.iscoroutinefunction(func)
    return known
