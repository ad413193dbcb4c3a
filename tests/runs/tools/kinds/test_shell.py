"""The shell kind, with real subprocesses: placeholders, injection, process groups, output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from runs.tools.kinds import shell
from runs.tools.kinds.shell import invoke, process, validate_config

PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"
PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"

INJECTIONS = [
    "; rm -rf victim",
    "$(touch pwned)",
    "`touch pwned`",
    "ok\ntouch pwned",
    "&& touch pwned",
    "| touch pwned",
    "'; touch pwned; '",
    '"; touch pwned; "',
    "${IFS}touch${IFS}pwned",
    "> pwned",
    "*",
    "{sandbox}",
]


def spec(config: dict[str, Any], **fields: Any) -> ToolSpec:
    return ToolSpec(name="t", kind="shell", config=config, **fields)


def run(config: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
    return asyncio.run(invoke(spec(config), params or {}))


def argv_of(template: list[str], params: dict[str, Any], cwd: Path | None = None) -> list[str]:
    """What a program started from ``template`` actually received as its arguments."""
    config: dict[str, Any] = {"argv": ["{python}", "-c", PRINT_ARGV, *template], "output": "json"}
    if cwd is not None:
        config["cwd"] = str(cwd)
    return run(config, params)


def running(pid: int) -> bool:
    """Whether ``pid`` runs. A zombie counts as gone: here PID 1 reaps orphans lazily."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


async def assert_gone(pids: list[int], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert [p for p in pids if running(p)] == [], "processes survived the cancellation"


async def wait_for_file(path: Path, within: float = 5.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


# --------------------------------------------------------------------------- argv placeholders
def test_param_placeholders_fill_whole_items_and_parts_of_items() -> None:
    got = argv_of(["{db}", "--label={label}", "pre-{db}-post"], {"db": "main.db", "label": "x y"})
    assert got == ["main.db", "--label=x y", "pre-main.db-post"]


def test_builtin_placeholders_name_the_sandbox_base_dir_and_python() -> None:
    got = argv_of(["{sandbox}", "{base_dir}/runs", "{python}"], {})
    assert got == [
        str(settings.PLANNERWEB_SANDBOX_DIR),
        f"{settings.BASE_DIR}/runs",
        sys.executable,
    ]
    assert Path(settings.PLANNERWEB_SANDBOX_DIR).is_dir()


def test_an_absent_optional_param_drops_its_item_and_the_bare_flag_before_it() -> None:
    template = ["--label", "{label}", "--db={db}", "-v", "{verbose}", "--keep", "{tag}"]
    assert argv_of(template, {"db": "a.db", "tag": "t"}) == ["--db=a.db", "--keep", "t"]
    assert argv_of(template, {"db": "a.db", "label": None, "tag": "t"}) == [
        "--db=a.db",
        "--keep",
        "t",
    ]
    assert argv_of(template, {"label": "L", "db": "a.db", "verbose": True, "tag": "t"}) == [
        "--label",
        "L",
        "--db=a.db",
        "-v",
        "true",
        "--keep",
        "t",
    ]


def test_non_string_values_are_passed_as_json_text() -> None:
    params = {"n": 3, "f": 1.5, "b": False, "l": [1, "a"], "o": {"k": 1}}
    got = argv_of(["{n}", "{f}", "{b}", "{l}", "{o}"], params)
    assert got == ["3", "1.5", "false", '[1,"a"]', '{"k":1}']


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_through_an_argv_param_is_literal_text(value: str, tmp_path: Path) -> None:
    (tmp_path / "victim").mkdir()
    got = argv_of(["{value}", "--value={value}"], {"value": value}, cwd=tmp_path)
    assert got == [value, f"--value={value}"]
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "victim").is_dir()


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_through_a_shell_script_param_is_literal_text(value: str, tmp_path: Path) -> None:
    (tmp_path / "victim").mkdir()
    config = {
        "shell": 'printf "%s" "$value"; printf "%s" "$PARAM_VALUE" >&2',
        "cwd": str(tmp_path),
        "env_params": ["value"],
    }
    result = run(config, {"value": value})
    assert result["stdout"] == value
    assert result["stderr"] == value
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "victim").is_dir()


@pytest.mark.parametrize("template", [["{target}"], ["{target}.txt"], ["{a}{target}"]])
def test_a_param_that_would_start_an_option_is_refused_before_the_program_starts(
    template: list[str], tmp_path: Path
) -> None:
    config = {
        "argv": ["{python}", "-c", "open('started', 'w')", *template],
        "cwd": str(tmp_path),
    }
    with pytest.raises(ToolError, match="read as an option"):
        run(config, {"target": "--delete-all", "a": "-"})
    assert not (tmp_path / "started").exists()


def test_a_dash_value_inside_a_flag_item_is_safe() -> None:
    assert argv_of(["--target={target}"], {"target": "--delete-all"}) == ["--target=--delete-all"]


def test_a_nul_byte_in_a_param_is_refused() -> None:
    with pytest.raises(ToolError, match="NUL"):
        argv_of(["{v}"], {"v": "a\0b"})


# --------------------------------------------------------------------------- shell form, env
def test_the_shell_form_gets_params_only_through_the_environment() -> None:
    config = {
        "shell": 'echo "$name|$PARAM_NAME|$PARAM_MY_FILE|$my_file|${NAME:-unset}"',
        "env_params": ["name", "my_file"],
    }
    result = run(config, {"name": "ada", "my_file": "f.txt"})
    assert result["stdout"] == "ada|ada|f.txt|f.txt|unset\n"


def test_a_param_not_listed_in_env_params_reaches_the_script_only_as_param_name() -> None:
    config = {"shell": 'echo "${name:-unset}|$PARAM_NAME"'}
    assert run(config, {"name": "ada"})["stdout"] == "unset|ada\n"


HOSTILE_PARAMS = {
    "http_proxy": "http://attacker.invalid:3128",
    "LD_PRELOAD": "/tmp/evil.so",
    "bash_env": "/tmp/evil.sh",
    "BASH_ENV": "/tmp/evil.sh",
    "PATH": "/tmp/evil-bin",
    "ld_preload": "/tmp/evil.so",
    "ifs": "x",
}


@pytest.mark.parametrize("form", ["argv", "shell"])
def test_params_named_like_system_variables_never_set_them(form: str) -> None:
    config: dict[str, Any] = (
        {"argv": ["{python}", "-c", PRINT_ENV]}
        if form == "argv"
        else {"shell": f"exec {sys.executable} -c '{PRINT_ENV}'"}
    )
    env = json.loads(run(config, {**HOSTILE_PARAMS, "db": "x"})["stdout"])
    for name, value in HOSTILE_PARAMS.items():
        assert env["PARAM_" + name.upper()] == value
        assert env.get(name) != value, name
    assert env["PATH"] != "/tmp/evil-bin"
    assert not {n for n in env if n.lower() in {"http_proxy", "ld_preload", "bash_env"}}
    assert "db" not in env and env["PARAM_DB"] == "x"


def test_a_bash_env_param_does_not_make_bash_source_a_file(tmp_path: Path) -> None:
    (tmp_path / "evil.sh").write_text("touch pwned\n")
    config = {"argv": ["/bin/bash", "-c", "echo ok"], "cwd": str(tmp_path)}
    params = {"BASH_ENV": str(tmp_path / "evil.sh"), "bash_env": str(tmp_path / "evil.sh")}
    assert run(config, params)["stdout"] == "ok\n"
    assert not (tmp_path / "pwned").exists()


def test_listed_env_params_are_exported_under_their_own_name_whatever_their_case() -> None:
    config = {"argv": ["{python}", "-c", PRINT_ENV], "env_params": ["db", "Target", "MODE"]}
    params = {"db": "main", "Target": "staging", "MODE": "fast", "other": "o"}
    env = json.loads(run(config, params)["stdout"])
    assert (env["db"], env["Target"], env["MODE"]) == ("main", "staging", "fast")
    assert env["PARAM_TARGET"] == "staging" and env["PARAM_OTHER"] == "o"
    assert "other" not in env


@pytest.mark.parametrize(
    "name", ["PATH", "path", "LD_PRELOAD", "ld_library_path", "BASH_ENV", "http_proxy", "IFS"]
)
def test_env_params_may_not_list_a_variable_the_system_acts_on(name: str) -> None:
    problems = validate_config({"shell": "true", "env_params": [name]})
    assert problems == [
        f"env_params: {name!r} is a variable the system acts on; read it as "
        f"$PARAM_{name.upper()} instead"
    ]


def test_with_a_schema_env_params_must_name_parameters() -> None:
    schema = {"type": "object", "properties": {"db": {"type": "string"}}}
    assert validate_config({"shell": "true", "env_params": ["db"]}, parameters_schema=schema) == []
    problems = validate_config({"shell": "true", "env_params": ["dbb"]}, parameters_schema=schema)
    assert problems == ["env_params: 'dbb' is not a parameter"]


def test_the_child_sees_a_minimal_environment_not_the_servers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLANNERWEB_SECRET_TEST", "hunter2")
    config = {"argv": ["{python}", "-c", PRINT_ENV], "env": {"K": "v", "PY": "{python}"}}
    config["env_params"] = ["db"]
    env = json.loads(run(config, {"db": "x", "LD_PRELOAD": "/tmp/evil.so"})["stdout"])
    assert "PLANNERWEB_SECRET_TEST" not in env
    assert env["K"] == "v"
    assert env["PY"] == sys.executable
    assert env["db"] == env["PARAM_DB"] == "x"
    assert env["PARAM_LD_PRELOAD"] == "/tmp/evil.so"
    assert "LD_PRELOAD" not in env  # only the names env_params lists are exported bare
    assert env["PATH"]
    assert set(env) <= {*shell.INHERITED_ENV, "K", "PY", "db", "PARAM_DB", "PARAM_LD_PRELOAD"}


def test_the_steps_idempotency_key_reaches_the_program_in_its_environment() -> None:
    config = {
        "shell": 'printf "%s" "$PLANNERWEB_IDEMPOTENCY_KEY"',
        "env": {"PLANNERWEB_IDEMPOTENCY_KEY": "fixed by the author"},
    }
    key = "7e4b2a10-5c3d-4f8e-9a1b-2c3d4e5f6a7b"
    result = asyncio.run(invoke(spec(config), {}, key))
    assert result["stdout"] == key
    assert run({"shell": 'printf "%s" "${PLANNERWEB_IDEMPOTENCY_KEY-unset}"'})["stdout"] == "unset"


def test_cwd_is_where_the_program_runs_and_defaults_to_the_sandbox(tmp_path: Path) -> None:
    script = ["{python}", "-c", "import os; print(os.getcwd())"]
    assert run({"argv": script, "cwd": str(tmp_path)})["stdout"].strip() == str(tmp_path)
    sandbox = run({"argv": script})["stdout"].strip()
    assert sandbox == str(settings.PLANNERWEB_SANDBOX_DIR)


# --------------------------------------------------------------------------- results
def test_text_output_is_exit_code_stdout_and_stderr() -> None:
    config = {"argv": ["{python}", "-c", "import sys; print('out'); print('err', file=sys.stderr)"]}
    assert run(config) == {"exit_code": 0, "stdout": "out\n", "stderr": "err\n", "truncated": False}


def test_json_output_is_parsed_from_stdout() -> None:
    config = {"argv": ["{python}", "-c", "print('{\"a\": [1, 2]}')"], "output": "json"}
    assert run(config) == {"a": [1, 2]}


def test_json_output_that_is_not_json_is_an_error_showing_its_start() -> None:
    config = {"argv": ["{python}", "-c", "print('hello ' * 100)"], "output": "json"}
    with pytest.raises(ToolError, match="not JSON: 'hello hello") as caught:
        run(config)
    assert len(caught.value.details["stdout"]) == 200


def test_a_non_zero_exit_is_an_error_carrying_stderr() -> None:
    code = "import sys; print('partial'); sys.stderr.write('disk is full\\n'); sys.exit(3)"
    with pytest.raises(ToolError, match="exited with status 3: disk is full") as caught:
        run({"argv": ["{python}", "-c", code]})
    assert caught.value.details == {
        "exit_code": 3,
        "stderr": "disk is full\n",
        "stdout": "partial\n",
    }


def test_output_is_capped_per_stream_while_the_child_writes_on(settings: Any) -> None:
    settings.PLANNERWEB_OUTPUT_CAP_BYTES = 1000
    code = "import sys; sys.stdout.write('x' * 2_000_000); sys.stderr.write('é' * 300_000)"
    started = time.monotonic()
    result = run({"argv": ["{python}", "-c", code]})
    assert time.monotonic() - started < 10
    assert result["exit_code"] == 0
    assert result["stdout"] == "x" * 1000
    assert result["stderr"] == "é" * 500
    assert result["truncated"] is True


def test_a_missing_program_is_a_config_error() -> None:
    with pytest.raises(ToolConfigError, match="cannot start"):
        run({"argv": ["/nonexistent/program"]})


# --------------------------------------------------------------------------- cancellation
GRANDCHILD = "echo $$ > child.pid; sleep 60 & echo $! > grandchild.pid; wait"


@pytest.mark.asyncio
async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(invoke(spec({"shell": GRANDCHILD, "cwd": str(tmp_path)}), {}), 0.5)
    assert time.monotonic() - started < 2.0
    pids = [int((tmp_path / name).read_text()) for name in ("child.pid", "grandchild.pid")]
    await assert_gone(pids)


@pytest.mark.asyncio
async def test_cancelling_the_call_kills_the_group_and_reraises(tmp_path: Path) -> None:
    task = asyncio.create_task(invoke(spec({"shell": GRANDCHILD, "cwd": str(tmp_path)}), {}))
    grandchild = int(await wait_for_file(tmp_path / "grandchild.pid"))
    child = int((tmp_path / "child.pid").read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_gone([child, grandchild])


@pytest.mark.asyncio
async def test_a_cancel_while_the_child_is_starting_still_ends_its_whole_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded machine the child (and its children) run before the start returns."""
    real = asyncio.create_subprocess_exec
    spawned = asyncio.Event()

    async def slow_start(*args: Any, **kwargs: Any) -> Any:
        proc = await real(*args, **kwargs)
        spawned.set()
        await asyncio.sleep(0.5)  # the rest of the start: the cancel arrives in here
        return proc

    monkeypatch.setattr(shell.asyncio, "create_subprocess_exec", slow_start)
    task = asyncio.create_task(invoke(spec({"shell": GRANDCHILD, "cwd": str(tmp_path)}), {}))
    await spawned.wait()
    grandchild = int(await wait_for_file(tmp_path / "grandchild.pid"))
    child = int((tmp_path / "child.pid").read_text())
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < shell.KILL_GRACE_SECONDS + 2
    await assert_gone([child, grandchild])


@pytest.mark.asyncio
async def test_a_grandchild_ignoring_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path,
) -> None:
    script = (
        "sh -c 'trap \"\" TERM; echo $$ > stubborn.pid; exec sleep 60' & "
        "while [ ! -s stubborn.pid ]; do :; done; wait"
    )
    task = asyncio.create_task(invoke(spec({"shell": script, "cwd": str(tmp_path)}), {}))
    stubborn = int(await wait_for_file(tmp_path / "stubborn.pid"))
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    elapsed = time.monotonic() - started
    assert shell.KILL_GRACE_SECONDS - 0.1 <= elapsed < shell.KILL_GRACE_SECONDS + 2
    await assert_gone([stubborn])


@pytest.mark.asyncio
async def test_a_background_grandchild_holding_the_pipes_does_not_hang_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shell, "PIPE_GRACE_SECONDS", 0.3)
    script = "sleep 60 & echo $! > grandchild.pid; echo done"
    started = time.monotonic()
    result = await invoke(spec({"shell": script, "cwd": str(tmp_path)}), {})
    assert time.monotonic() - started < 3
    assert result["stdout"] == "done\n"
    await assert_gone([int((tmp_path / "grandchild.pid").read_text())])


# --------------------------------------------------------------------------- config validation
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"shell": 'cp "{db}" backups/'}, 'e.g. "$db" or "$PARAM_DB"'),
        ({"shell": "echo {{ db }}"}, "must not contain placeholders"),
        ({"argv": ["echo"], "shell": "echo"}, "exactly one of"),
        ({}, "exactly one of"),
        ({"argv": []}, "non-empty list"),
        ({"argv": ["{program}", "x"]}, "argv[0]"),
        ({"argv": ["ls"], "output": "xml"}, "output must be one of"),
        ({"argv": ["ls"], "stdin": "x"}, "unknown key 'stdin'"),
        ({"argv": ["ls"], "cwd": "/srv/{tenant}"}, "cwd may use only built-in"),
        ({"argv": ["ls"], "env": {"A": "{db}"}}, "env A may use only built-in"),
        ({"argv": ["ls"], "env": {"1A": "x"}}, "not a valid variable name"),
        ({"argv": ["ls"], "env_params": "db"}, "env_params must be a list"),
        ({"argv": ["ls"], "env_params": ["a-b"]}, "env_params: 'a-b' is not a valid variable"),
    ],
)
def test_bad_configs_are_reported(config: dict[str, Any], message: str) -> None:
    problems = validate_config(config)
    assert any(message in p for p in problems), problems
    with pytest.raises(ToolConfigError):
        run(config)


def test_shell_text_may_use_braced_variables_and_awk_style_braces() -> None:
    config = {"shell": "echo \"${db}\" | awk '{ print $1 }'; f() { echo; }"}
    assert validate_config(config) == []


def test_with_a_schema_argv_placeholders_must_name_parameters() -> None:
    schema = {"type": "object", "properties": {"db": {"type": "string"}}}
    assert validate_config({"argv": ["x", "{db}", "{sandbox}"]}, parameters_schema=schema) == []
    problems = validate_config({"argv": ["x", "{dbb}"]}, parameters_schema=schema)
    assert problems == ["argv[1] uses {dbb}, which is not a parameter"]


# --------------------------------------------------------------------------- supervision
def test_the_program_exits_as_the_tool_did_when_a_signal_ended_it() -> None:
    with pytest.raises(ToolError, match="killed by SIGTERM") as caught:
        run({"shell": "kill -TERM $$"})
    assert caught.value.details["exit_code"] == -signal.SIGTERM


WORKER = """
import asyncio, sys
from runs.tools.kinds.shell import process

async def main():
    started = await process.start(["/bin/sh", "-c", sys.argv[1]], {"PATH": "/usr/bin:/bin"}, ".")
    print(started.proc.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_a_tool_and_its_children_die_with_the_worker_process_that_started_them(
    tmp_path: Path,
) -> None:
    """SIGKILL leaves the worker no chance to clean up: the supervisor ends the group."""
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, GRANDCHILD],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(settings.BASE_DIR)},
        stdout=subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        supervisor = int(worker.stdout.readline())
        grandchild = int(asyncio.run(wait_for_file(tmp_path / "grandchild.pid")))
        child = int((tmp_path / "child.pid").read_text())
        assert all(running(p) for p in (supervisor, child, grandchild))
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        asyncio.run(assert_gone([supervisor, child, grandchild], within=5))
    finally:
        worker.kill()
        worker.wait(10)
        if worker.stdout is not None:
            worker.stdout.close()


def test_the_tool_outlives_the_thread_that_started_it_and_not_its_lifeline(
    tmp_path: Path,
) -> None:
    """Unlike a parent-death signal, nothing hangs on the thread that forked: only the lifeline."""
    started: list[tuple[subprocess.Popen[bytes], socket.socket]] = []

    def start_in_a_thread_of_its_own() -> None:
        ours, theirs = socket.socketpair()
        supervisor = subprocess.Popen(
            process.SUPERVISOR_ARGV, stdin=theirs, cwd=tmp_path, start_new_session=True
        )
        theirs.close()
        ours.sendall(process.encode_request(["/bin/sh", "-c", GRANDCHILD], {}))
        assert ours.recv(100).startswith(b"started ")
        started.append((supervisor, ours))

    thread = threading.Thread(target=start_in_a_thread_of_its_own)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and started
    (supervisor, lifeline), *_ = started
    try:
        grandchild = int(asyncio.run(wait_for_file(tmp_path / "grandchild.pid")))
        child = int((tmp_path / "child.pid").read_text())
        time.sleep(0.3)
        assert running(child) and running(grandchild)
        lifeline.close()  # what the kernel does when the worker process dies
        asyncio.run(assert_gone([supervisor.pid, child, grandchild]))
    finally:
        lifeline.close()
        supervisor.kill()
        supervisor.wait(10)


@pytest.mark.parametrize(
    ("printed", "problem"),
    [
        ("'[' * 5000 + ']' * 5000", "nested more than 100 levels deep"),
        ("'9' * 5000", "an integer has more than 100 digits"),
        ("'[NaN]'", "NaN is not a number JSON allows"),
    ],
)
def test_json_output_beyond_the_limits_is_an_error_saying_which(printed: str, problem: str) -> None:
    config = {"argv": ["{python}", "-c", f"print({printed})"], "output": "json"}
    with pytest.raises(ToolError, match=f"stdout is not JSON: .*{problem}"):
        run(config)
