"""Golden suite files: the format, its validation, and where a suite is found by name.

A suite is YAML (``evals/<suite>.yaml``)::

    name: demo
    tools: ../tools.yaml             # tools file, relative to the suite (default: the demo tools)
    defaults: {planner: manual, approval: approve}
    bands: {pass_rate: 0.9, max_steps_per_task: 12}
    tasks:
      - name: release
        text: Release 2.4.0 to staging, then production
        plan: ../plans/deploy.yaml   # a hand-written plan (planner manual), or inline
        faults: ["tool:fail@2"]
        expect:
          outcome: succeeded
          tools: {include: [deploy], exclude: [restore_database], order: [run_tests, deploy]}
          before: [[backup_database, deploy]]
          max_steps: 10
          results: [{tool: deploy, check: {type: contains, path: environment, text: prod}}]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runs.demo import TOOLS_FILE as DEMO_TOOLS_FILE
from runs.evals.faults import FaultSpec, FaultSpecError, parse_fault
from runs.evaluation.checks import validate_checks
from runs.models import EvalSuite, Tool
from runs.planning.options import MODES, PLANNERS
from runs.textdata import TextDataError, parse_yaml
from runs.tools.yaml_io import tools_to_yaml

OUTCOMES = ("succeeded", "failed", "rolled_back", "escalated", "cancelled")
DEMO_SUITES_DIR = Path(__file__).resolve().parent.parent / "demo" / "evals"
MAX_TASKS = 500


class SuiteError(ValueError):
    """A suite file that cannot be used; ``problems`` lists each one with where it is."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolExpect(_Strict):
    include: list[str] = Field(default_factory=list)  # every one must run (a set)
    exclude: list[str] = Field(default_factory=list)  # none may run
    order: list[str] = Field(default_factory=list)  # these run in this order (a subsequence)


class ResultCheck(_Strict):
    step: str = ""  # a step id of the final plan
    tool: str = ""  # or the last step of this tool that succeeded
    check: dict[str, Any]

    @model_validator(mode="after")
    def _target(self) -> ResultCheck:
        if bool(self.step) == bool(self.tool):
            raise ValueError("give exactly one of step or tool")
        if problems := validate_checks([self.check]):
            raise ValueError("; ".join(problems))
        if self.check.get("type") == "llm_rubric":
            raise ValueError("a suite checks results without a model: llm_rubric is not offered")
        return self


class Expect(_Strict):
    outcome: Literal["succeeded", "failed", "rolled_back", "escalated", "cancelled"]
    cause: str = ""  # the escalation cause, when outcome is escalated
    tools: ToolExpect = Field(default_factory=ToolExpect)
    before: list[tuple[str, str]] = Field(default_factory=list)  # (first, then) tool pairs
    max_steps: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    max_cost: float | None = Field(default=None, ge=0)
    max_seconds: float | None = Field(default=None, gt=0)
    results: list[ResultCheck] = Field(default_factory=list)


class Defaults(_Strict):
    planner: str = "manual"
    model: str = ""
    mode: str = "auto"
    approval: Literal["approve", "reject"] = "approve"
    # When a plan waits for a reviewer (PLANNERWEB_APPROVAL_MODE); "" = the deployment's.
    approval_policy: Literal["", "always", "sensitive", "low_confidence", "never"] = ""
    max_replans: int = Field(default=1, ge=0, le=20)


class TaskSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    text: str = Field(min_length=1, max_length=200)
    description: str = ""
    planner: str | None = None
    model: str | None = None
    mode: str | None = None
    approval: Literal["approve", "reject"] | None = None
    approval_policy: Literal["always", "sensitive", "low_confidence", "never"] | None = None
    max_replans: int | None = Field(default=None, ge=0, le=20)
    plan: str | dict[str, Any] | None = None  # a file (relative to the suite) or the plan itself
    faults: list[FaultSpec] = Field(default_factory=list)
    expect: Expect

    @field_validator("faults", mode="before")
    @classmethod
    def _faults(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        try:
            return [parse_fault(item) for item in value]
        except FaultSpecError as exc:
            raise ValueError(str(exc)) from None


class Bands(_Strict):
    """Tolerance bands over the whole suite run; a breach fails the run (non-zero exit)."""

    pass_rate: float | None = Field(default=None, ge=0, le=1)
    max_steps_per_task: float | None = Field(default=None, ge=0)
    min_tool_success_rate: float | None = Field(default=None, ge=0, le=1)
    max_disagreement_rate: float | None = Field(default=None, ge=0, le=1)
    max_escalation_rate: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=0)
    max_cost: float | None = Field(default=None, ge=0)
    max_latency_ms: float | None = Field(default=None, ge=0)  # mean per task


class Suite(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    description: str = ""
    tools: str = ""
    defaults: Defaults = Field(default_factory=Defaults)
    bands: Bands = Field(default_factory=Bands)
    tasks: list[TaskSpec] = Field(min_length=1, max_length=MAX_TASKS)

    @model_validator(mode="after")
    def _unique(self) -> Suite:
        names = [t.name for t in self.tasks]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"task names repeat: {', '.join(dupes)}")
        return self


@dataclass(frozen=True)
class ResolvedTask:
    """A task with the suite's defaults applied and its plan read."""

    spec: TaskSpec
    planner: str
    model: str
    mode: str
    approval: str
    approval_policy: str
    max_replans: int
    plan: dict[str, Any] | None


@dataclass(frozen=True)
class LoadedSuite:
    suite: Suite
    text: str
    path: Path | None
    tools_text: str
    tasks: list[ResolvedTask]

    @property
    def name(self) -> str:
        return self.suite.name


def _problems(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in err['loc']) or '(suite)'}: {err['msg']}" for err in exc.errors()
    ]


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{what} {path} cannot be read: {exc}") from None


def _plan(task: TaskSpec, base: Path | None) -> dict[str, Any] | None:
    if task.plan is None or isinstance(task.plan, dict):
        return task.plan
    if base is None:
        raise SuiteError(
            f"tasks.{task.name}.plan: a plan file needs a suite file to be relative to"
        )
    try:
        data = parse_yaml(_read(base / task.plan, "plan"))
    except TextDataError as exc:
        raise SuiteError(f"tasks.{task.name}.plan: {exc}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"tasks.{task.name}.plan: the plan file holds no mapping")
    return data


def _resolve(task: TaskSpec, defaults: Defaults, base: Path | None) -> ResolvedTask:
    planner = task.planner or defaults.planner
    mode = task.mode or defaults.mode
    where = f"tasks.{task.name}"
    if planner not in PLANNERS:
        raise SuiteError(f"{where}.planner: unknown planner {planner!r} ({', '.join(PLANNERS)})")
    if mode not in MODES:
        raise SuiteError(f"{where}.mode: unknown mode {mode!r} ({', '.join(MODES)})")
    plan = _plan(task, base)
    if planner == "manual" and plan is None:
        raise SuiteError(f"{where}: planner manual needs a plan")
    if task.expect.cause and task.expect.outcome != "escalated":
        raise SuiteError(f"{where}.expect.cause: only an escalated outcome has a cause")
    return ResolvedTask(
        spec=task,
        planner=planner,
        model=task.model if task.model is not None else defaults.model,
        mode=mode,
        approval=task.approval or defaults.approval,
        approval_policy=task.approval_policy or defaults.approval_policy,
        max_replans=task.max_replans if task.max_replans is not None else defaults.max_replans,
        plan=plan,
    )


def suite_parse(
    text: str, *, path: Path | None = None, tools_text: str | None = None
) -> LoadedSuite:
    """Parse and check a suite's text; raises SuiteError listing every problem.

    The tools are ``tools_text`` when given, else the suite's ``tools`` file, else the demo's.
    """
    try:
        data = parse_yaml(text)
    except TextDataError as exc:
        raise SuiteError(f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SuiteError("a suite is a mapping with name and tasks")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc)
        raise SuiteError(f"{len(problems)} problem(s) in the suite", problems) from None
    base = path.parent if path is not None else None
    tools_path = (base / suite.tools) if (suite.tools and base) else DEMO_TOOLS_FILE
    if suite.tools and base is None:
        raise SuiteError("tools: a tools file needs a suite file to be relative to")
    tasks = [_resolve(task, suite.defaults, base) for task in suite.tasks]
    if tools_text is None:
        tools_text = _read(tools_path, "tools file")
    return LoadedSuite(suite, text, path, tools_text, tasks)


def suite_dirs() -> list[Path]:
    """Where suites are looked up by name: ``PLANNERWEB_EVAL_DIRS``, then the demo's."""
    dirs = [Path(d) for d in getattr(settings, "PLANNERWEB_EVAL_DIRS", ["evals"])]
    return [*dirs, DEMO_SUITES_DIR]


def suite_find(name_or_path: str) -> Path:
    """A suite file: the path itself when it exists, else ``<dir>/<name>.yaml`` in ``suite_dirs``."""
    given = Path(name_or_path)
    if given.suffix in (".yaml", ".yml") or given.parent != Path():
        if given.is_file():
            return given
        raise SuiteError(f"no suite file at {given}")
    for folder in suite_dirs():
        for suffix in (".yaml", ".yml"):
            if (candidate := folder / f"{name_or_path}{suffix}").is_file():
                return candidate
    where = ", ".join(str(d) for d in suite_dirs())
    raise SuiteError(f"no suite named {name_or_path!r} in {where}")


def suite_load(name_or_path: str) -> LoadedSuite:
    """A suite file (``suite_find``), else a suite saved in the database under that name."""
    try:
        path = suite_find(name_or_path)
    except SuiteError:
        stored = EvalSuite.objects.filter(name=name_or_path).first()
        if stored is None:
            raise
        # Saved from this deployment's runs: its own tool registry, not the demo's.
        return suite_parse(stored.text, tools_text=tools_to_yaml(Tool.objects.filter(enabled=True)))
    return suite_parse(_read(path, "suite"), path=path)
