"""The Django admin: where staff edit the tool registry, and can look at (not edit) runs.

Access follows ``runs.permissions.is_admin`` (staff), not Django's per-model
permissions, so the role model stays in one place. Runs, plans, steps and
transcript events are read-only here: their status changes belong to
``runs.statemachine`` and the executor, and the transcript is append-only.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join

from reviews.admin_audit import AuditedAdminMixin
from reviews.audit import config_audit
from runs.evals.suite import SuiteError, suite_parse
from runs.evaluation.checks import validate_checks
from runs.models import (
    TOOL_FIELDS,
    EvalSuite,
    McpServer,
    Plan,
    Run,
    Step,
    SuiteRun,
    SuiteTaskResult,
    Task,
    Tool,
    TranscriptEvent,
    Workflow,
)
from runs.permissions import is_admin
from runs.planning.handoff import workflow_shape_problems
from runs.pools import queue_problems
from runs.textdata import TextDataError, parse_json, unstorable
from runs.tools.base import ToolError
from runs.tools.kinds.mcp.servers import server_problems
from runs.tools.locks import locks_problems
from runs.tools.mcp_discovery import tools_discover
from runs.tools.registry import config_help, validate_parameters_schema, validate_tool_config
from runs.tools.yaml_io import tools_to_yaml


class StaffAdmin(admin.ModelAdmin):
    """Full access for staff admins, none for anyone else."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)


class ReadOnlyAdmin(StaffAdmin):
    """Staff may look; nobody adds, changes or deletes through the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --------------------------------------------------------------------------- tools
class PrettyJSONField(forms.JSONField):
    """JSON shown indented: configs and schemas are read far more than written."""

    def to_python(self, value: Any) -> Any:
        """Parse like Django's field, but say where the JSON breaks: line, column and why."""
        if isinstance(value, str) and value not in self.empty_values:
            try:  # within the parser's limits: no 5,000-digit integer or deep nesting gets a 500
                found = unstorable(parse_json(value))
            except TextDataError as exc:
                why = exc.message.removeprefix("invalid JSON: ")
                if exc.line is None:
                    raise ValidationError(
                        "Enter a valid JSON: %(why)s.", code="invalid", params={"why": why}
                    ) from None
                raise ValidationError(
                    "Enter a valid JSON: %(why)s at line %(line)d, column %(column)d.",
                    code="invalid",
                    params={"why": why, "line": exc.line, "column": exc.column},
                ) from None
            if found:
                raise ValidationError(
                    "Enter JSON a database can store: %(where)s: %(why)s.",
                    code="invalid",
                    params={"where": found[0] or "the value", "why": found[1]},
                )
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        """The posted text, shown back as typed when it is beyond the parser's limits."""
        if isinstance(data, str) and not self.disabled:
            try:
                parse_json(data)
            except TextDataError:
                return forms.fields.InvalidJSONInput(data)
        return super().bound_data(data, initial)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)


def _config_help() -> str:
    """The config field's help: what the config holds for each kind (the admin renders it as HTML)."""
    lines = format_html_join("", "<li><b>{}</b>: {}</li>", sorted(config_help().items()))
    return format_html("A JSON object; what it holds depends on the kind:<ul>{}</ul>", lines)


_JSON_WIDGET = forms.Textarea(attrs={"rows": 12, "cols": 90, "style": "font-family: monospace"})


class ToolAdminForm(forms.ModelForm):
    class Meta:
        model = Tool
        fields = list(TOOL_FIELDS)
        field_classes = {
            "config": PrettyJSONField,
            "parameters_schema": PrettyJSONField,
            "checks": PrettyJSONField,
            "locks": PrettyJSONField,
        }
        widgets = {
            "config": _JSON_WIDGET,
            "parameters_schema": _JSON_WIDGET,
            "checks": _JSON_WIDGET,
        }
        help_texts = {
            "checks": (
                'Evaluator checks of each result, e.g. [{"type": "exit_code", "equals": 0}, '
                '{"type": "contains", "text": "ok", "path": "stdout", "on_fail": "warn"}]: '
                "json_schema, exit_code, contains, regex, range, llm_rubric "
                "(see runs/evaluation/checks.py)."
            ),
            "config": _config_help(),
            "parameters_schema": 'A JSON Schema with "type": "object"; step params must match it.',
            "locks": (
                'Resource locks every step of this tool takes, e.g. ["env:{{ params.environment }}"]: '
                "a step waits while another step holds the same key (only {{ params.<name> }} "
                "may be used)."
            ),
            "queue": (
                "The executor pool that calls this tool: only workers started with "
                "`manage.py db_worker --queue NAME` run its steps. Blank: the run's own worker."
            ),
        }

    def clean(self) -> dict[str, Any]:
        """Check the schema, then the kind's config against it; errors land on their fields."""
        data = super().clean() or {}
        for name in ("config", "parameters_schema"):
            if name in data and data[name] is None:  # an emptied textarea
                data[name] = {}
        if "parameters_schema" in data:
            for problem in validate_parameters_schema(data["parameters_schema"]):
                self.add_error("parameters_schema", problem)
        schema = data.get("parameters_schema")  # gone from data when it had errors
        if data.get("kind") and "config" in data:
            for problem in validate_tool_config(
                data["kind"], data["config"], parameters_schema=schema
            ):
                self.add_error("config", problem)
        if data.get("checks") is None and "checks" in data:
            data["checks"] = []
        for problem in validate_checks(data.get("checks")):
            self.add_error("checks", problem)
        if data.get("locks") is None and "locks" in data:
            data["locks"] = []
        for problem in locks_problems(data.get("locks", [])):
            self.add_error("locks", problem)
        for problem in queue_problems(data.get("queue", "")):
            self.add_error("queue", problem)
        timeout = data.get("timeout_seconds")
        if timeout is not None and not timeout > 0:
            self.add_error("timeout_seconds", "The timeout must be above 0 seconds.")
        return data


@admin.register(Tool)
class ToolAdmin(AuditedAdminMixin, StaffAdmin):
    form = ToolAdminForm
    # Every add, change and delete here writes an AuditEntry (reviews.admin_audit).
    audit_type = "tool"
    audit_fields = TOOL_FIELDS
    list_display = (
        "name",
        "kind",
        "enabled",
        "sensitive",
        "idempotent",
        "read_only",
        "annotations",
        "timeout_seconds",
    )
    list_filter = (
        "kind",
        "enabled",
        "sensitive",
        "idempotent",
        "read_only",
        "honours_idempotency_key",
    )
    search_fields = ("name", "description")
    readonly_fields = ("created_at", "updated_at")
    actions = ("export_yaml", "enable", "disable")
    fieldsets = (
        (None, {"fields": ("name", "description", "kind", "enabled")}),
        ("Call", {"fields": ("config", "parameters_schema")}),
        ("Evaluator", {"fields": ("checks",)}),
        (
            "Execution",
            {
                "fields": (
                    "timeout_seconds",
                    "max_retries",
                    "idempotent",
                    "read_only",
                    "honours_idempotency_key",
                    "sensitive",
                    "locks",
                )
            },
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="MCP annotations")
    def annotations(self, tool: Tool) -> str:
        """The server's hints behind the flags, and which flags were set by hand."""
        config = tool.config if isinstance(tool.config, dict) else {}
        if tool.kind != Tool.Kind.MCP:
            return ""
        hints = ", ".join(f"{k}={v}" for k, v in sorted((config.get("annotations") or {}).items()))
        overrides = ", ".join(config.get("overrides") or ())
        return (hints or "none") + (f"; set by hand: {overrides}" if overrides else "")

    @admin.action(description="Export selected tools as tools.yaml")
    def export_yaml(self, request: HttpRequest, queryset: QuerySet[Tool]) -> HttpResponse:
        response = HttpResponse(tools_to_yaml(queryset.order_by("name")), content_type="text/yaml")
        response["Content-Disposition"] = 'attachment; filename="tools.yaml"'
        return response

    @admin.action(description="Enable selected tools")
    def enable(self, request: HttpRequest, queryset: QuerySet[Tool]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected tools")
    def disable(self, request: HttpRequest, queryset: QuerySet[Tool]) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Tool], enabled: bool) -> None:
        # save() per row (not update()) so updated_at moves.
        tools = list(queryset.exclude(enabled=enabled))
        with transaction.atomic():
            for tool in tools:
                before = self.audit_snapshot(tool)
                tool.enabled = enabled
                tool.save(update_fields=["enabled", "updated_at"])
                config_audit(
                    actor=request.user,  # type: ignore[arg-type]
                    object_type="tool",
                    object_id=self.audit_id(tool),
                    before=before,
                    after=self.audit_snapshot(tool),
                )
        word = "enabled" if enabled else "disabled"
        self.message_user(request, f"{len(tools)} tool(s) {word}.", messages.SUCCESS)


# --------------------------------------------------------------------------- MCP servers
class McpServerAdminForm(forms.ModelForm):
    url = forms.URLField(required=False, max_length=500, assume_scheme="https")

    class Meta:
        model = McpServer
        fields = ("name", "transport", "command", "env", "cwd", "url", "headers")
        field_classes = {
            "command": PrettyJSONField,
            "env": PrettyJSONField,
            "headers": PrettyJSONField,
        }
        help_texts = {
            "command": 'stdio: the argv list, e.g. ["npx", "-y", "@acme/mcp-server"] (no shell).',
            "env": 'stdio: extra environment; write a secret as "${VAR}", read from the '
            "worker's environment when connecting.",
            "headers": 'HTTP: headers, e.g. {"Authorization": "Bearer ${ACME_TOKEN}"}.',
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("env", "headers"):
            if data.get(name) is None and name in data:
                data[name] = {}
        if data.get("command") is None and "command" in data:
            data["command"] = []
        for field_name, problem in server_problems(
            transport=data.get("transport", ""),
            command=data.get("command", []),
            env=data.get("env", {}),
            cwd=data.get("cwd", ""),
            url=data.get("url", ""),
            headers=data.get("headers", {}),
        ):
            self.add_error(field_name if field_name in self.fields else None, problem)
        return data


@admin.register(McpServer)
class McpServerAdmin(AuditedAdminMixin, StaffAdmin):
    form = McpServerAdminForm
    audit_type = "mcp_server"
    audit_fields = ("name", "transport", "command", "env", "cwd", "url", "headers")
    list_display = ("name", "transport", "url")
    actions = ("discover",)

    @admin.action(description="Discover tools of the selected servers")
    def discover(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        for server in queryset:
            try:
                report = tools_discover(server=server.name, actor=request.user)
            except ToolError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                continue
            parts = [
                f"{label} {len(names)}" + (f" ({', '.join(names)})" if names else "")
                for label, names in (
                    ("created", report.created),
                    ("updated", report.updated),
                    ("unchanged", report.unchanged),
                    ("disabled", report.disabled),
                    ("skipped", report.skipped),
                )
            ]
            self.message_user(
                request, f"Server {server.name}: " + "; ".join(parts), messages.SUCCESS
            )


class WorkflowAdminForm(forms.ModelForm):
    class Meta:
        model = Workflow
        fields = ("name", "description", "parameters_schema", "document", "enabled")
        field_classes = {"parameters_schema": PrettyJSONField, "document": PrettyJSONField}
        help_texts = {
            "parameters_schema": 'A JSON Schema of type object, e.g. {"type": "object", '
            '"properties": {"table": {"type": "string"}}, "required": ["table"]}.',
            "document": "A plan ({goal, steps, rollback}); any string may hold "
            "{{ params.<name> }}, and params may bring {{ steps.<id>.result }} references.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        schema = data.get("parameters_schema")
        if schema is not None:
            for problem in validate_parameters_schema(schema):
                self.add_error("parameters_schema", problem)
        document = data.get("document")
        if document is not None:
            for problem in workflow_shape_problems(document):
                self.add_error("document", problem)
        return data


@admin.register(Workflow)
class WorkflowAdmin(AuditedAdminMixin, StaffAdmin):
    form = WorkflowAdminForm
    audit_type = "workflow"
    audit_fields = ("name", "description", "parameters_schema", "document", "enabled")
    list_display = ("name", "enabled", "updated_at")
    search_fields = ("name", "description")


# --------------------------------------------------------------------------- runs (read-only)
@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ("title", "submitted_by", "created_at")
    search_fields = ("title", "description")
    date_hierarchy = "created_at"


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("id", "task", "status", "created_at", "started_at", "finished_at")
    list_filter = ("status",)
    search_fields = ("task__title", "stop_reason")
    list_select_related = ("task",)
    date_hierarchy = "created_at"


@admin.register(Plan)
class PlanAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "run", "version", "source", "is_valid", "created_at")
    list_filter = ("source", "is_valid")
    list_select_related = ("run",)


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = (
        "key",
        "run",
        "phase",
        "tool_name",
        "status",
        "verdict",
        "attempts",
        "finished_at",
    )
    list_filter = ("status", "phase", "verdict")
    search_fields = ("key", "tool_name")
    list_select_related = ("run",)


@admin.register(TranscriptEvent)
class TranscriptEventAdmin(ReadOnlyAdmin):
    list_display = ("run", "seq", "role", "kind", "created_at")
    list_filter = ("role", "kind")
    list_select_related = ("run",)
    # Counting a long transcript table on every page is slow and tells nobody anything.
    show_full_result_count = False


# --------------------------------------------------------------------------- evaluation
MAX_SUITE_FILE = 1024 * 1024


class EvalSuiteForm(forms.ModelForm):
    upload = forms.FileField(
        required=False,
        label="Import a file",
        help_text="A suite file (evals/<suite>.yaml): its text replaces the text below.",
    )

    class Meta:
        model = EvalSuite
        fields = ("name", "upload", "text", "source")
        help_texts = {"text": "The suite's YAML (see docs/evaluation.md); checked when saved."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["text"].required = False  # an imported file gives it

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("upload")
        if upload is not None:
            if upload.size > MAX_SUITE_FILE:
                raise ValidationError({"upload": "A suite file is at most 1 MB."})
            try:
                data["text"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError({"upload": "A suite file is UTF-8 text."}) from None
            data["source"] = data.get("source") or upload.name
        elif not data.get("text"):
            raise ValidationError({"text": "Write the suite's YAML here, or import a file."})
        text = data.get("text")
        if text:
            try:
                # The registry's tools stand in for a tools file here: only the format is checked.
                loaded = suite_parse(text, tools_text="")
            except SuiteError as exc:
                raise ValidationError({"text": list(exc.problems)}) from None
            if data.get("name") and loaded.name != data["name"]:
                raise ValidationError({"text": "The suite's name: must be the same as Name."})
        return data


@admin.register(EvalSuite)
class EvalSuiteAdmin(StaffAdmin):
    form = EvalSuiteForm
    list_display = ("name", "source", "updated_at")
    search_fields = ("name",)


class SuiteTaskResultInline(admin.TabularInline):
    model = SuiteTaskResult
    fields = ("name", "attempt", "planner", "passed", "outcome", "cause", "steps", "tokens", "cost")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SuiteRun)
class SuiteRunAdmin(ReadOnlyAdmin):
    list_display = ("suite_name", "started_at", "mode", "provider", "passed", "tasks", "ok")
    list_filter = ("suite_name", "mode", "ok")
    readonly_fields = [f.name for f in SuiteRun._meta.fields]
    inlines = [SuiteTaskResultInline]
