"""tools.yaml: import the tool registry from a file, and export it back.

The shape (in the style of gantz.yaml)::

    tools:
      - name: backup_database
        description: Copy the database file to a timestamped backup.
        parameters:
          - {name: db, type: string, required: true, description: Path of the database}
          - {name: label, type: string}
        script:                       # exactly one of: argv | shell | http | python
          argv: ["{python}", "{base_dir}/runs/demo/scripts/backup.py", "--db={db}"]
          cwd: "{sandbox}"
          output: json
        timeout: 30
        sensitive: false
        idempotent: true
        read_only: false              # true: it only reads; its steps are never rolled back
        honours_idempotency_key: false
        max_retries: 2
        queue: sql                    # executor pool: only `db_worker --queue sql` calls it
        enabled: true

``parameters`` becomes an object JSON Schema (``additionalProperties: false``). A
schema that a flat parameter list cannot express is exported, and may be
imported, verbatim as ``parameters_schema:`` instead, so export then import
always leaves the registry unchanged. Keys left out take the model defaults,
so the file is the whole truth about each tool it names (``enabled`` included).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import jsonschema
import yaml
from django.db import transaction

from runs.evaluation.checks import validate_checks
from runs.models import Tool
from runs.pools import queue_problems
from runs.textdata import TextDataError, parse_yaml, unstorable
from runs.tools.kinds.agent import yaml as agent_yaml
from runs.tools.kinds.http import yaml as http_yaml
from runs.tools.kinds.llm import yaml as llm_yaml
from runs.tools.kinds.mcp import yaml as mcp_yaml
from runs.tools.kinds.python import yaml as python_yaml
from runs.tools.kinds.shell import yaml as shell_yaml
from runs.tools.locks import locks_problems
from runs.tools.mcp_servers import servers_for_export, servers_from_document, servers_upsert
from runs.tools.registry import validate_parameters_schema, validate_tool_config
from runs.tools.services import tool_audit, tool_snapshot
from runs.tools.yaml_style import Flow, FlowMap

TYPES = ("string", "integer", "number", "boolean", "array", "object")
# Per-parameter JSON Schema keywords a file may use, besides name / type / required.
PARAM_KEYWORDS = (
    "description",
    "enum",
    "default",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "items",
    "format",
)
_PARAM_KEYS = {"name", "type", "required", *PARAM_KEYWORDS}
_TOOL_KEYS = (
    "name",
    "description",
    "parameters",
    "parameters_schema",
    "script",
    "timeout",
    "sensitive",
    "idempotent",
    "read_only",
    "honours_idempotency_key",
    "max_retries",
    "enabled",
    "checks",
    "locks",
    "queue",
)
# Each kind maps its own ``script:`` keys (runs/tools/kinds/<kind>/yaml.py).
_SCRIPTS = {
    "shell": shell_yaml,
    "http": http_yaml,
    "python": python_yaml,
    "llm": llm_yaml,
    "agent": agent_yaml,
    "mcp": mcp_yaml,
}
SCRIPT_KINDS = tuple(key for mapping in _SCRIPTS.values() for key in mapping.SCRIPT_KEYS)
_TOOL_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_RETRIES = 32767


@dataclass(frozen=True)
class ToolDraft:
    """The Tool fields one file entry describes (not yet saved)."""

    name: str
    kind: str
    config: dict[str, Any]
    parameters_schema: dict[str, Any]
    description: str = ""
    timeout_seconds: float = 60.0
    max_retries: int = 2
    sensitive: bool = False
    idempotent: bool = False
    read_only: bool = False
    honours_idempotency_key: bool = False
    enabled: bool = True
    checks: list[Any] = field(default_factory=list)  # evaluator checks (runs/evaluation/checks.py)
    locks: list[str] = field(default_factory=list)  # resource lock templates (runs/tools/locks.py)
    queue: str = ""  # the executor pool that calls it (runs/pools.py); "": the run's own worker
    # The file's shell text when its {{param}} placeholders were converted (not stored).
    script_before: str = ""

    def changed_fields(self, tool: Tool) -> list[str]:
        return [f for f in self.stored() if getattr(tool, f) != getattr(self, f)]

    def stored(self) -> dict[str, Any]:
        """The Tool fields, without what only the import report shows."""
        values = asdict(self)
        del values["script_before"]
        return values


class ToolsYamlError(ValueError):
    """The file has problems; ``problems`` lists every one as ``"<path>: <message>"``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in tools file:\n" + "\n".join(problems))


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # existing tools left as they are
    # name -> (the file's shell text, the script stored): {{param}} placeholders converted
    converted: dict[str, tuple[str, str]] = field(default_factory=dict)
    servers: list[str] = field(default_factory=list)  # MCP servers created or changed


# --------------------------------------------------------------------------- parsing
def tools_from_yaml(text: str) -> list[ToolDraft]:
    """Parse and check a tools file; raise ToolsYamlError listing every problem."""
    try:
        document = parse_yaml(text)
    except TextDataError as exc:
        raise ToolsYamlError([f"(file): {exc}"]) from None
    found = unstorable(document)
    if found:
        raise ToolsYamlError([f"{found[0] or '(file)'}: {found[1]}"])
    if not isinstance(document, dict) or not isinstance(document.get("tools"), list):
        raise ToolsYamlError(["(file): expected a mapping with a 'tools:' list"])
    problems = [f"(file): unknown key {k!r}" for k in document if k not in ("tools", "mcp_servers")]
    problems += servers_from_document(document)[1]
    drafts: list[ToolDraft] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(document["tools"]):
        path = f"tools[{i}]"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            path += f" ({entry['name']})"
            if entry["name"] in seen:
                problems.append(f"{path}: duplicate name, also at {seen[entry['name']]}")
            seen.setdefault(entry["name"], f"tools[{i}]")
        draft = _tool_from_entry(entry, path, problems)
        if draft is not None:
            drafts.append(draft)
    if problems:
        raise ToolsYamlError(problems)
    return drafts


def _tool_from_entry(entry: Any, path: str, problems: list[str]) -> ToolDraft | None:
    if not isinstance(entry, dict):
        problems.append(f"{path}: each tool must be a mapping")
        return None
    start = len(problems)
    problems.extend(f"{path}: unknown key {k!r}" for k in entry if k not in _TOOL_KEYS)

    name = entry.get("name")
    if name is None:
        problems.append(f"{path}: name is required")
    elif not isinstance(name, str) or not _TOOL_NAME.match(name) or len(name) > 100:
        problems.append(
            f"{path}.name: use letters, digits, '-' and '_' (at most 100), not {name!r}"
        )
    description = entry.get("description") or ""
    if not isinstance(description, str):
        problems.append(f"{path}.description: must be text")

    schema = _schema_of(entry, path, problems)
    names = set(schema.get("properties") or {}) if isinstance(schema, dict) else None
    kind, config = _script_of(entry.get("script"), f"{path}.script", problems, names)
    if kind is not None:
        # Without a valid schema, placeholders cannot be checked against parameter names.
        problems.extend(
            f"{path}.script: {p}"
            for p in validate_tool_config(kind, config, parameters_schema=schema)
        )

    timeout = entry.get("timeout", 60.0)
    if not _is_number(timeout) or not timeout > 0:
        problems.append(f"{path}.timeout: must be a number of seconds above 0, not {timeout!r}")
    retries = entry.get("max_retries", 2)
    if (
        isinstance(retries, bool)
        or not isinstance(retries, int)
        or not 0 <= retries <= _MAX_RETRIES
    ):
        problems.append(f"{path}.max_retries: must be a whole number from 0, not {retries!r}")
    flags = {}
    for flag, default in (
        ("sensitive", False),
        ("idempotent", False),
        ("read_only", False),
        ("honours_idempotency_key", False),
        ("enabled", True),
    ):
        flags[flag] = entry.get(flag, default)
        if not isinstance(flags[flag], bool):
            problems.append(f"{path}.{flag}: must be true or false, not {flags[flag]!r}")

    checks = entry.get("checks") or []
    problems.extend(f"{path}.checks: {p}" for p in validate_checks(checks))
    locks = entry.get("locks") or []
    problems.extend(f"{path}.locks: {p}" for p in locks_problems(locks))
    queue = entry.get("queue") or ""
    problems.extend(f"{path}.queue: {p}" for p in queue_problems(queue))

    if len(problems) > start or kind is None or schema is None:
        return None
    return ToolDraft(
        name=name,  # type: ignore[arg-type]
        kind=kind,
        config=config,
        parameters_schema=schema,
        description=description,
        timeout_seconds=float(timeout),
        max_retries=retries,
        checks=checks,
        locks=locks,
        queue=queue if isinstance(queue, str) else "",
        script_before=_converted_from(entry["script"], config),
        **flags,
    )


def _converted_from(script: dict[str, Any], config: dict[str, Any]) -> str:
    """The file's shell text when the stored one differs (placeholders converted), else ""."""
    before = script.get("shell")
    return before if isinstance(before, str) and before != config.get("shell") else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _schema_of(entry: dict[str, Any], path: str, problems: list[str]) -> dict[str, Any] | None:
    """The parameters schema, from ``parameters`` (a list) or ``parameters_schema`` (verbatim)."""
    if "parameters" in entry and "parameters_schema" in entry:
        problems.append(f"{path}: give either parameters or parameters_schema, not both")
        return None
    if "parameters_schema" in entry:
        schema = entry["parameters_schema"]
        bad = validate_parameters_schema(schema)
        problems.extend(f"{path}.parameters_schema: {p}" for p in bad)
        return schema if not bad else None

    params = entry.get("parameters") or []
    if not isinstance(params, list):
        problems.append(f"{path}.parameters: must be a list")
        return None
    start = len(problems)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for j, param in enumerate(params):
        ppath = f"{path}.parameters[{j}]"
        if not isinstance(param, dict):
            problems.append(f"{ppath}: each parameter must be a mapping")
            continue
        pname = param.get("name")
        if isinstance(pname, str):
            ppath += f" ({pname})"
        problems.extend(f"{ppath}: unknown key {k!r}" for k in param if k not in _PARAM_KEYS)
        if pname is None:
            problems.append(f"{ppath}: name is required")
        elif not isinstance(pname, str) or not _PARAM_NAME.match(pname):
            problems.append(f"{ppath}.name: use letters, digits and '_' (not first), not {pname!r}")
        elif pname in properties:
            problems.append(f"{ppath}: duplicate parameter name")
        ptype = param.get("type")
        if ptype is None:
            problems.append(f"{ppath}: type is required (one of {', '.join(TYPES)})")
        elif ptype not in TYPES:
            problems.append(f"{ppath}.type: {ptype!r} is not one of {', '.join(TYPES)}")
        is_required = param.get("required", False)
        if not isinstance(is_required, bool):
            problems.append(f"{ppath}.required: must be true or false")
        if isinstance(pname, str) and pname not in properties:
            properties[pname] = {"type": ptype} | {
                k: param[k] for k in PARAM_KEYWORDS if k in param
            }
            if is_required is True:
                required.append(pname)
    if len(problems) > start:
        return None
    schema = _canonical_schema(properties, required)
    bad = validate_parameters_schema(schema)
    problems.extend(f"{path}.parameters: {p}" for p in bad)
    if bad:
        return None
    for pname, prop in properties.items():
        if "default" in prop:
            for error in jsonschema.Draft202012Validator(prop).iter_errors(prop["default"]):
                problems.append(f"{path}.parameters ({pname}).default: {error.message}")
    return schema if len(problems) == start else None


def _canonical_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _script_of(
    script: Any, path: str, problems: list[str], params: set[str] | None = None
) -> tuple[str | None, dict[str, Any]]:
    """``(kind, config)`` from a ``script:`` mapping; each kind reads its own keys."""
    if not isinstance(script, dict):
        problems.append(f"{path}: required, a mapping with one of {', '.join(SCRIPT_KINDS)}")
        return None, {}
    present = [k for k in SCRIPT_KINDS if k in script]
    if not present:
        problems.append(f"{path}: needs one of {', '.join(SCRIPT_KINDS)}")
        return None, {}
    if len(present) > 1:
        problems.append(f"{path}: has more than one script kind ({', '.join(present)}); pick one")
        return None, {}
    (key,) = present
    kind, mapping = next((k, m) for k, m in _SCRIPTS.items() if key in m.SCRIPT_KEYS)
    others = sorted(set(script) - {key} - mapping.SCRIPT_EXTRAS)
    if others and mapping.SCRIPT_EXTRAS:
        problems.extend(f"{path}: unknown key {k!r}" for k in others)
    elif others:
        problems.append(f"{path}: {key} takes no sibling keys ({', '.join(others)})")
    config = None if others else mapping.config_from_script(script, key, path, problems, params)
    return (kind, config) if config is not None else (None, {})


# --------------------------------------------------------------------------- import
@transaction.atomic
def tools_import(
    *, text: str, replace: bool = False, missing_only: bool = False, actor: Any = None
) -> ImportReport:
    """Upsert the file's tools by name; with ``replace``, disable enabled tools it omits.

    With ``missing_only``, only tools that do not exist are created; the others
    are left as they are (``kept``). Nothing is written when the file has any
    problem (ToolsYamlError). Every tool created, changed or disabled gets its
    audit entry (``actor`` made it).
    """

    drafts = tools_from_yaml(text)
    report = ImportReport()
    servers, _ = servers_from_document(parse_yaml(text))
    report.servers = servers_upsert(drafts=servers, actor=actor, reason=WHY)
    names = [d.name for d in drafts]
    existing = {t.name: t for t in Tool.objects.select_for_update().filter(name__in=names)}
    for draft in drafts:
        if draft.script_before:
            report.converted[draft.name] = (draft.script_before, draft.config["shell"])
        tool = existing.get(draft.name)
        if tool is None:
            tool = Tool.objects.create(**draft.stored())
            tool_audit(actor=actor, tool=tool, before=None, after=tool_snapshot(tool), reason=WHY)
            report.created.append(draft.name)
            continue
        if missing_only:
            report.kept.append(draft.name)
            continue
        changed = draft.changed_fields(tool)
        if not changed:
            report.unchanged.append(draft.name)
            continue
        before = tool_snapshot(tool)
        for name in changed:
            setattr(tool, name, getattr(draft, name))
        tool.save(update_fields=[*changed, "updated_at"])
        tool_audit(actor=actor, tool=tool, before=before, after=tool_snapshot(tool), reason=WHY)
        report.updated.append(draft.name)
    if replace:
        stale = list(Tool.objects.select_for_update().filter(enabled=True).exclude(name__in=names))
        report.disabled = sorted(t.name for t in stale)
        for tool in stale:
            before = tool_snapshot(tool)
            tool.enabled = False
            tool.save(update_fields=["enabled", "updated_at"])
            tool_audit(actor=actor, tool=tool, before=before, after=tool_snapshot(tool), reason=WHY)
    return report


WHY = "tools.yaml import"


# --------------------------------------------------------------------------- export
class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(
    Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)
_Dumper.add_representer(
    FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True)
)


def tools_to_yaml(tools: Iterable[Tool]) -> str:
    """The tools as a tools file; importing it back changes nothing."""
    entries = []
    for tool in tools:
        entry: dict[str, Any] = {"name": tool.name}
        if tool.description:
            entry["description"] = tool.description
        params = _params_of(tool.parameters_schema)
        if params is None:
            entry["parameters_schema"] = tool.parameters_schema
        else:
            entry["parameters"] = params
        entry["script"] = _script_for(tool.kind, tool.config)
        timeout = float(tool.timeout_seconds)
        entry["timeout"] = int(timeout) if timeout.is_integer() else timeout
        entry["sensitive"] = tool.sensitive
        entry["idempotent"] = tool.idempotent
        if tool.read_only:
            entry["read_only"] = True
        if tool.honours_idempotency_key:  # left out, it takes the default (false)
            entry["honours_idempotency_key"] = True
        entry["max_retries"] = tool.max_retries
        entry["enabled"] = tool.enabled
        if tool.checks:
            entry["checks"] = tool.checks
        if tool.locks:
            entry["locks"] = tool.locks
        if tool.queue:
            entry["queue"] = tool.queue
        entries.append(entry)
    document: dict[str, Any] = {"tools": entries}
    servers = servers_for_export(
        {e["script"]["mcp"].get("server") for e in entries if "mcp" in e["script"]}
    )
    if servers:
        document = {"mcp_servers": servers, **document}
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )


def _params_of(schema: Any) -> list[FlowMap] | None:
    """The schema as a parameter list, or None when a list would not reproduce it exactly."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return None
    required = schema.get("required", [])
    if not isinstance(required, list):
        return None
    params = []
    for name, prop in schema["properties"].items():
        if (
            not isinstance(prop, dict)
            or prop.get("type") not in TYPES
            or not set(prop) <= {"type", *PARAM_KEYWORDS}
            or not _PARAM_NAME.match(name)
        ):
            return None
        param = FlowMap(name=name, type=prop["type"])
        if name in required:
            param["required"] = True
        param.update((k, prop[k]) for k in PARAM_KEYWORDS if k in prop)
        params.append(param)
    rebuilt = _canonical_schema(
        {p["name"]: {k: v for k, v in p.items() if k not in ("name", "required")} for p in params},
        [p["name"] for p in params if p.get("required")],
    )
    return params if rebuilt == schema else None


def _script_for(kind: str, config: Any) -> dict[str, Any]:
    mapping = _SCRIPTS.get(kind)
    if mapping is None or not isinstance(config, dict):
        return {kind: config}
    return mapping.script_from_config(config)
