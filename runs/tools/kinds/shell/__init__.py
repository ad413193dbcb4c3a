"""The shell kind: run a program with an argv list, or a fixed ``/bin/sh`` script.

Config shapes (``Tool.config``)::

    {"argv": ["{python}", "{base_dir}/runs/demo/scripts/backup.py", "--db={db}"],
     "cwd": "{sandbox}", "env": {"K": "v"}, "env_params": ["db"], "output": "text" | "json"}
    {"shell": "cp \\"$db\\" backups/", "env_params": ["db"], ...same optional keys}

Why it is shaped like this: parameters come from a planner (an LLM), so they are
untrusted text. They never reach a shell parser:

* argv form: ``{name}`` placeholders are replaced inside argv items and the list
  is exec'd directly (no shell). A value that would make an item start with "-"
  is refused, because the program would read it as an option. An item whose
  placeholder names an absent (or null) parameter is dropped, together with a
  bare flag right before it (``["--label", "{label}"]``).
* shell form: the script text is fixed by the tool author; parameters reach it
  only as environment variables (see ``param_env``): ``PARAM_<NAME>`` always, and
  their own name only when the config's ``env_params`` lists it.

Built-in placeholders (argv, cwd, env values): ``{sandbox}``
(``settings.PLANNERWEB_SANDBOX_DIR``, created on use), ``{base_dir}``
(``settings.BASE_DIR``), ``{python}`` (``sys.executable``). There is no escape
for a literal ``{identifier}``; ``{}`` and ``{"json": 1}`` are left alone.

The child gets a minimal environment (``INHERITED_ENV`` from the server, then the
parameters as ``PARAM_<NAME>`` and under the names ``env_params`` lists, then the
config's ``env``, then the step's idempotency key as ``PLANNERWEB_IDEMPOTENCY_KEY``),
never the server's whole environment, which may hold API keys. It runs under a
supervisor in a process group of its own (``process``), so cancellation (the
executor's timeout or an operator's cancel) kills grandchildren too: SIGTERM,
``KILL_GRACE_SECONDS``, then SIGKILL; and the whole group dies with the worker
process, however that ends.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

from runs.telemetry.tracing import traceparent
from runs.textdata import TextDataError, parse_json
from runs.tools.base import PLACEHOLDER, ToolConfigError, ToolError, ToolSpec, param_text
from runs.tools.kinds.shell import process
from runs.tools.kinds.shell.process import KILL_GRACE_SECONDS as KILL_GRACE_SECONDS

BUILTINS = ("sandbox", "base_dir", "python")
# Server variables a child may see; none of these carries a secret.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# After the program exits, how long a grandchild may keep our pipes open.
PIPE_GRACE_SECONDS = 2.0
# The step's idempotency key, in the child's environment.
KEY_VARIABLE = "PLANNERWEB_IDEMPOTENCY_KEY"
_CONFIG_KEYS = {"argv", "shell", "cwd", "env", "env_params", "output"}
_OUTPUTS = ("text", "json")
# What the admin's config field says about this kind.
CONFIG_HELP = (
    'either "argv": a list of program and arguments with {param} placeholders, or "shell": '
    "a fixed script that reads parameters as environment variables; optional "
    '"cwd", "env" (extra variables), "env_params" (parameters also exported under their own '
    'name; every parameter is $PARAM_<NAME>) and "output" ("text" or "json"). '
    'Example: {"argv": ["{python}", "backup.py", "--db={db}"], "output": "json"}'
)

# In shell text: "{name}" not preceded by "$" (so "${name}" stays legal), or "{{ ... }}".
_SHELL_TEMPLATE = re.compile(r"(?<!\$)\{[A-Za-z_][A-Za-z0-9_]*\}|\{\{")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names a tool may not list in "env_params", whatever their case: variables the shell,
# the dynamic loader, interpreters or network libraries act on.
_PROTECTED_ENV = frozenset(
    {
        *INHERITED_ENV,
        "IFS",
        "ENV",
        "BASH_ENV",
        "CDPATH",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "GLOBIGNORE",
        "PROMPT_COMMAND",
        "NODE_OPTIONS",
        "RUBYOPT",
        "PERL5OPT",
        "PERL5LIB",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PYTHONINSPECT",
        "JAVA_TOOL_OPTIONS",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_EXEC_PATH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    }
)
_PROTECTED_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_", "PARAM_")
_PROTECTED_SUFFIXES = ("_PROXY",)


def _protected(name: str) -> bool:
    upper = name.upper()
    return (
        upper in _PROTECTED_ENV
        or upper.startswith(_PROTECTED_PREFIXES)
        or upper.endswith(_PROTECTED_SUFFIXES)
    )


# --------------------------------------------------------------------------- config
def validate_config(config: dict[str, Any], *, parameters_schema: dict | None = None) -> list[str]:
    """Every problem with a shell config; with the tool's schema, also unknown placeholders."""
    if not isinstance(config, dict):
        return ["config must be an object"]
    problems = [f"unknown key {k!r}" for k in sorted(set(config) - _CONFIG_KEYS)]
    params = _schema_params(parameters_schema)
    if ("argv" in config) == ("shell" in config):
        problems.append("config needs exactly one of 'argv' (a list) or 'shell' (script text)")
    if "argv" in config:
        argv = config["argv"]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            problems.append("argv must be a non-empty list of strings")
        else:
            if set(PLACEHOLDER.findall(argv[0])) - set(BUILTINS):
                problems.append("argv[0] (the program) must not come from a parameter")
            if params is not None:
                for i, item in enumerate(argv):
                    for name in PLACEHOLDER.findall(item):
                        if name not in BUILTINS and name not in params:
                            problems.append(f"argv[{i}] uses {{{name}}}, which is not a parameter")
                for name in sorted(params & set(BUILTINS)):
                    problems.append(f"parameter {name!r} is shadowed by the built-in {{{name}}}")
    if "shell" in config:
        script = config["shell"]
        if not isinstance(script, str) or not script.strip():
            problems.append("shell must be non-empty script text")
        elif match := _SHELL_TEMPLATE.search(script):
            problems.append(
                f"shell text must not contain placeholders ({match.group(0)!r}): the script is "
                'fixed; read a parameter from the environment instead, e.g. "$db" or "$PARAM_DB"'
            )
    if "cwd" in config:
        if not isinstance(config["cwd"], str) or not config["cwd"]:
            problems.append("cwd must be a non-empty string")
        elif bad := set(PLACEHOLDER.findall(config["cwd"])) - set(BUILTINS):
            problems.append(f"cwd may use only built-in placeholders, not {sorted(bad)}")
    if "env" in config:
        env = config["env"]
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            problems.append("env must be an object of string values")
        else:
            for key, value in env.items():
                if not _ENV_NAME.match(key):
                    problems.append(f"env name {key!r} is not a valid variable name")
                if bad := set(PLACEHOLDER.findall(value)) - set(BUILTINS):
                    problems.append(
                        f"env {key} may use only built-in placeholders, not {sorted(bad)}"
                    )
    problems += _env_params_problems(config, params)
    if config.get("output", "text") not in _OUTPUTS:
        problems.append(f"output must be one of {list(_OUTPUTS)}")
    return problems


def _env_params_problems(config: dict[str, Any], params: set[str] | None) -> list[str]:
    if "env_params" not in config:
        return []
    names = config["env_params"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return ["env_params must be a list of parameter names"]
    problems = []
    for name in names:
        if not _ENV_NAME.match(name):
            problems.append(f"env_params: {name!r} is not a valid variable name")
        elif _protected(name):
            problems.append(
                f"env_params: {name!r} is a variable the system acts on; read it as "
                f"$PARAM_{name.upper()} instead"
            )
        elif params is not None and name not in params:
            problems.append(f"env_params: {name!r} is not a parameter")
    return problems


def _schema_params(schema: dict | None) -> set[str] | None:
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties")
    return set(props) if isinstance(props, dict) else set()


# --------------------------------------------------------------------------- building the call
def param_env(params: dict[str, Any], listed: Sequence[str] = ()) -> dict[str, str]:
    """Environment variables for parameters.

    Every parameter ``name`` becomes ``PARAM_<NAME>`` (uppercased, characters other
    than A-Z, 0-9 and _ replaced by _). Only the names in ``listed`` (the config's
    ``env_params``, checked by ``validate_config``) are also exported under their own
    name, so scripts can say ``"$db"``: a parameter the schema lets through as an
    extra property (``http_proxy``, ``bash_env``, ``LD_PRELOAD``) never sets a
    variable the system acts on. Absent and null parameters are not exported.
    """
    env: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        text = param_text(value)
        env["PARAM_" + re.sub(r"[^A-Z0-9_]", "_", name.upper())] = text
        if name in listed:
            env[name] = text
    return env


def _builtin(name: str) -> str:
    if name == "sandbox":
        sandbox = Path(settings.PLANNERWEB_SANDBOX_DIR)
        sandbox.mkdir(parents=True, exist_ok=True)
        return str(sandbox)
    if name == "base_dir":
        return str(settings.BASE_DIR)
    return sys.executable


def _fill_builtins(text: str) -> str:
    return PLACEHOLDER.sub(lambda m: _builtin(m[1]) if m[1] in BUILTINS else m[0], text)


def build_argv(template: list[str], params: dict[str, Any]) -> list[str]:
    """Substitute placeholders in one pass; values are never re-scanned for placeholders."""

    def fill(match: re.Match[str]) -> str:
        name = match[1]
        return _builtin(name) if name in BUILTINS else param_text(params[name])

    argv: list[str] = []
    kept_bare_flag = False  # whether argv[-1] is a bare flag kept from the previous item
    for i, item in enumerate(template):
        names = PLACEHOLDER.findall(item)
        if any(n not in BUILTINS and params.get(n) is None for n in names):
            if kept_bare_flag:
                argv.pop()
            kept_bare_flag = False
            continue
        value = PLACEHOLDER.sub(fill, item)
        if i > 0 and value.startswith("-") and not item.startswith("-"):
            raise ToolError(
                f"refused: argument {i} would be {value[:80]!r}, which the program would read as "
                "an option; the value came from a parameter (use a --flag={param} item to pass "
                "values that start with '-')",
                details={"argument": i, "value": value[:200]},
            )
        argv.append(value)
        kept_bare_flag = item.startswith("-") and not names
    return argv


def build_env(config: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(param_env(params, config.get("env_params") or ()))
    env.update({k: _fill_builtins(v) for k, v in (config.get("env") or {}).items()})
    return env


# --------------------------------------------------------------------------- running it
async def invoke(spec: ToolSpec, params: dict[str, Any], idempotency_key: str | None = None) -> Any:
    """Run the program; a result dict for output "text", the parsed stdout for "json"."""
    config = spec.config
    if problems := validate_config(config):
        raise ToolConfigError(f"tool {spec.name!r} is misconfigured: " + "; ".join(problems))
    if "argv" in config:
        argv = build_argv(config["argv"], params)
    else:
        argv = ["/bin/sh", "-c", config["shell"]]
    env = build_env(config, params)
    if idempotency_key is not None:
        env[KEY_VARIABLE] = idempotency_key
    if parent := traceparent():  # the tool's own spans join the run's trace
        env["TRACEPARENT"] = parent
    cwd = _fill_builtins(config.get("cwd", "{sandbox}"))
    if any("\0" in a for a in argv) or any("\0" in v for v in env.values()):
        raise ToolError("refused: a parameter contains a NUL byte")

    cap = int(settings.PLANNERWEB_OUTPUT_CAP_BYTES)
    # The child runs (and may start its own children) before the start returns. A cancel
    # arriving meanwhile must not leave it behind: asyncio would kill the supervisor alone,
    # then wait for its pipes, which the tool keeps open for as long as it lives. So the
    # start is shielded, and a cancelled start ends the whole group.
    start = asyncio.ensure_future(process.start(argv, env, cwd))
    try:
        supervised = await asyncio.shield(start)
    except OSError as exc:  # missing program, not executable, missing cwd
        raise ToolConfigError(f"cannot start {argv[0]!r} in {cwd!r}: {exc}") from exc
    except asyncio.CancelledError:
        await process.uninterruptible(process.end_started(start))
        raise
    try:
        returncode, (out, out_cut), (err, err_cut) = await _outcome(supervised, cap)
    finally:
        supervised.release()
    stdout = out.decode("utf-8", errors="replace")
    stderr = err.decode("utf-8", errors="replace")
    truncated = out_cut or err_cut

    if returncode != 0:
        raise ToolError(
            f"{_describe_exit(returncode)}: {_tail(stderr) or '(no stderr)'}",
            details={"exit_code": returncode, "stderr": stderr, "stdout": stdout},
        )
    if config.get("output", "text") == "json":
        if out_cut:
            raise ToolError(f"stdout is over {cap} bytes, too long to parse as JSON")
        try:
            return parse_json(stdout)  # bounded: a tool's output is untrusted text
        except TextDataError as exc:
            raise ToolError(
                f"stdout is not JSON: {stdout[:200]!r} ({exc})", details={"stdout": stdout[:200]}
            ) from None
    return {"exit_code": returncode, "stdout": stdout, "stderr": stderr, "truncated": truncated}


Output = tuple[bytes, bool]  # what a pipe gave, up to the cap, and whether it was cut


async def _outcome(supervised: process.Supervised, cap: int) -> tuple[int, Output, Output]:
    """Wait for the tool's exit and read its output; the whole group ends if we are cancelled."""
    proc = supervised.proc
    assert proc.stdout is not None and proc.stderr is not None  # both were opened as PIPE
    readers = [
        asyncio.ensure_future(process.drain(proc.stdout, cap)),
        asyncio.ensure_future(process.drain(proc.stderr, cap)),
    ]
    try:
        returncode = await process.wait_exit(proc, readers)
        _, pending = await asyncio.wait(readers, timeout=PIPE_GRACE_SECONDS)
        if pending:  # a background grandchild still holds our pipes: end the group
            await process.terminate(supervised)
            await asyncio.wait(pending, timeout=PIPE_GRACE_SECONDS)
    except BaseException:
        await process.uninterruptible(process.terminate(supervised))
        for reader in readers:
            reader.cancel()
        raise
    for reader in readers:
        if not reader.done():
            reader.cancel()
    out, err = (r.result() if r.done() and not r.cancelled() else (b"", True) for r in readers)
    return returncode, out, err


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def _tail(text: str, limit: int = 500) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]
