"""The agent's persisted state: tools, tasks, runs, plan versions, steps and transcripts.

Status fields are written only by ``runs.statemachine`` (ORM path) and
``runs.execution.journal`` (the executor's batched path); both enforce the
transition tables in ``runs.statemachine``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

# A tool's own fields: what the API, a tools.yaml import and the admin may set, and
# what every audit entry of a tool change records (timestamps move on every save).
TOOL_FIELDS = (
    "name",
    "description",
    "kind",
    "config",
    "parameters_schema",
    "timeout_seconds",
    "max_retries",
    "sensitive",
    "idempotent",
    "read_only",
    "honours_idempotency_key",
    "enabled",
    "checks",
    "locks",
    "queue",
)


class Tool(models.Model):
    """A registry entry: one callable capability a plan step may use."""

    class Kind(models.TextChoices):
        SHELL = "shell", "Shell (argv, no shell string)"
        HTTP = "http", "HTTP request"
        PYTHON = "python", "Python callable"
        LLM = "llm", "Language-model prompt"
        AGENT = "agent", "Agent (model and tools in a bounded loop)"
        MCP = "mcp", "MCP server tool"

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Kind-specific settings; see runs/tools/kinds/<kind>.py for each shape.
    config = models.JSONField(default=dict, blank=True)
    # JSON Schema (an object schema) the step params must satisfy.
    parameters_schema = models.JSONField(default=dict, blank=True)
    timeout_seconds = models.FloatField(default=60.0)
    # Extra attempts after the first; applied only when the tool is idempotent.
    max_retries = models.PositiveSmallIntegerField(default=2)
    sensitive = models.BooleanField(default=False)
    idempotent = models.BooleanField(default=False)
    # Only reads: a step on it changes nothing, so a rollback has nothing of it to undo.
    read_only = models.BooleanField(default=False)
    # The tool (or the service behind it) does an operation once per idempotency key, so a
    # step caught mid-call by a crash may be called again with its key instead of escalating.
    honours_idempotency_key = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # Evaluator checks of each successful result (runs/evaluation/checks.py has the shapes).
    checks = models.JSONField(default=list, blank=True)
    # Resource lock templates every step of this tool takes, e.g. ["env:{{ params.environment }}"]
    # (runs/tools/locks.py); a step waits while another step holds one of its keys.
    locks = models.JSONField(default=list, blank=True)
    # The executor pool its steps run on (``db_worker --queue NAME``); blank: the run's own worker.
    queue = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class McpServer(models.Model):
    """An MCP server whose tools the ``mcp`` kind calls (runs/tools/kinds/mcp/)."""

    class Transport(models.TextChoices):
        STDIO = "stdio", "stdio (a local process)"
        HTTP = "http", "streamable HTTP"

    name = models.SlugField(max_length=100, unique=True)
    transport = models.CharField(max_length=8, choices=Transport.choices)
    # stdio: the argv list (no shell), extra environment, working directory.
    command = models.JSONField(default=list, blank=True)
    # NAME -> text; "${VAR}" in a value is read from the worker's environment at connect time,
    # so a secret lives in the deployment's environment, never in the database.
    env = models.JSONField(default=dict, blank=True)
    cwd = models.CharField(max_length=500, blank=True)
    # http: the endpoint and its headers (values take "${VAR}" like env).
    url = models.URLField(max_length=500, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ConfirmPlan(models.TextChoices):
    """When a planner's plan waits for its submitter's confirmation before it runs."""

    AUTO = "auto", "when unsure or sensitive"
    ALWAYS = "always", "always"
    NEVER = "never", "never"


class Task(models.Model):
    """What an operator asked for; each attempt at it is a Run."""

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Planner options (runs/planning/options.py); blank/null means "the deployment default".
    # planner: a provider name (openai, anthropic, compatible, chain), "playbook" or "manual".
    planner = models.CharField(max_length=30, blank=True)
    model = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=10, blank=True, default="auto")
    temperature = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    max_replans = models.PositiveSmallIntegerField(default=3)
    # Iterative mode: at most this many steps (one model call each); null = the setting.
    max_steps = models.PositiveSmallIntegerField(null=True, blank=True)
    # Supervisor budgets (runs/execution/budgets.py); null means the PLANNERWEB_BUDGET_* default.
    budget_max_steps = models.PositiveIntegerField(null=True, blank=True)
    budget_max_tokens = models.PositiveIntegerField(null=True, blank=True)
    budget_max_cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    budget_max_wall_seconds = models.PositiveIntegerField(null=True, blank=True)
    # Keep this task's finished runs this many days (runs/retention.py); null = the setting.
    retain_days = models.PositiveIntegerField(null=True, blank=True)
    # Plan, then confirm (runs/lifecycle/confirmation.py): auto, always or never, resolved
    # from PLANNERWEB_CONFIRM_PLANS at submission; blank for a hand-written plan.
    confirm_plan = models.CharField(max_length=6, blank=True, choices=ConfirmPlan.choices)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    PLANNING = "planning"
    AWAITING_APPROVAL = "awaiting_approval"
    # The planner asked the operator a question (runs/lifecycle/questions.py).
    AWAITING_INPUT = "awaiting_input"
    # A subplan step's child run is under way (runs/lifecycle/subplans.py): no worker held.
    AWAITING_CHILD = "awaiting_child"
    EXECUTING = "executing"
    REPLANNING = "replanning"
    ROLLING_BACK = "rolling_back"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"


class StepStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled_back"


class Run(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    stop_reason = models.TextField(blank=True)
    current_plan = models.ForeignKey(
        "Plan", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    max_parallel = models.PositiveSmallIntegerField(default=8)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The operator's cancel asked for the finished steps to be undone, and why they cancelled.
    cancel_rollback = models.BooleanField(default=False)
    cancel_reason = models.TextField(blank=True)
    # Which worker executes the run, until when; renewed by its heartbeat.
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Write-ahead intent: main steps whose tools may have been called while their
    # ``running`` rows were not yet committed (``execution.commit_policy``). A worker
    # taking the run over records them as started before anything else.
    starting = models.JSONField(default=list, blank=True, editable=False)
    # A batch of the executor's changes committed as one document (PostgreSQL), whose
    # rows and events the run's next write applies first (``execution.commit_policy``).
    held = models.TextField(default="", blank=True, editable=False)
    # Claims of the run for planning since it was last queued; a worker that keeps dying
    # while planning (or output that keeps failing to store) escalates it after the limit.
    planning_attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Redaction state (runs/redaction.py): a random salt and, per kind, the keyed hashes
    # of the values replaced so far with their placeholder numbers; never a value itself.
    redaction = models.JSONField(default=dict, blank=True)
    # The OpenTelemetry trace of the run's execution ("" while tracing is off).
    trace_id = models.CharField(max_length=32, blank=True)
    # A child run executes one ``subplan`` step of its parent (runs/lifecycle/subplans.py).
    # A child outlives its parent's removal (retention keeps each run's own tombstone).
    parent_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    parent_step = models.ForeignKey(
        "Step", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_runs"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        # The runs list's order: a deep page walks this index alone (bench/pages.py).
        indexes = [models.Index(fields=["created_at", "id"], name="run_created_id")]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.status})"


class Plan(models.Model):
    """One version of a run's plan. Versions are immutable once written."""

    class Source(models.TextChoices):
        OPERATOR = "operator"
        PLANNER = "planner"
        REPLANNER = "replanner"
        REVIEWER = "reviewer"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="plans")
    version = models.PositiveIntegerField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    goal = models.TextField(blank=True)
    # The document as submitted (after YAML/JSON parsing), kept for audit; only the params
    # its steps left out that have a default in their tool's schema are filled in.
    document = models.JSONField(null=True, blank=True)
    rollback = models.JSONField(default=list, blank=True)
    is_valid = models.BooleanField(default=False)
    # Every validation problem: [{"path": ..., "code": ..., "message": ...}].
    errors = models.JSONField(default=list, blank=True)
    # For a replanned version, how it differs from its parent:
    # {"added": [ids], "removed": [ids], "changed": [{"id", "fields"}], "kept": [ids]}.
    diff = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "version"]
        constraints = [
            models.UniqueConstraint(fields=["run", "version"], name="plan_unique_version"),
        ]

    def __str__(self) -> str:
        return f"Plan v{self.version} of run {self.run_id}"


class Step(models.Model):
    class Phase(models.TextChoices):
        MAIN = "main"
        ROLLBACK = "rollback"

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="steps")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=100)
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.MAIN)
    position = models.PositiveIntegerField()
    tool = models.ForeignKey(
        Tool, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The tool's name at plan time: history stays readable if the tool is renamed or deleted.
    tool_name = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    depends_on = models.JSONField(default=list, blank=True)
    # A rollback step: the key of the main step it undoes (its own ``undo:``, or a plan-level
    # rollback step's ``undoes:``); it runs only when that step succeeded. Blank: unlinked.
    undoes = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    confidence = models.FloatField(null=True, blank=True)
    # The plan step's own lock templates; the tool's are added to them at run time.
    locks = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=12, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The evaluator's verdict on the result: pass / warn / fail (blank: no checks ran).
    verdict = models.CharField(max_length=4, blank=True)
    verdict_reason = models.TextField(blank=True)
    # Sent with every call of this step's tool (retries and crash takeovers alike), so the
    # tool can tell a repeat from a new operation. Not a secret: the run page shows it.
    idempotency_key = models.UUIDField(default=uuid.uuid4, editable=False)

    class Meta:
        ordering = ["plan", "phase", "position"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "key"], name="step_unique_key_per_plan"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"


class ResourceLock(models.Model):
    """One step's claim on a resource key: held (``granted``) or waiting in line.

    The rows of a key form its queue, in ``id`` order (first come, first served);
    at most one row per key is granted, which the database itself enforces, so
    executors in any process or machine agree. Rows go when their step finishes,
    when their run stops, and when a crashed worker's run is taken over.
    """

    key = models.CharField(max_length=200)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="+")
    granted = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    granted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["key", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(granted=True), name="resourcelock_one_holder"
            ),
            models.UniqueConstraint(fields=["step", "key"], name="resourcelock_step_key"),
        ]
        indexes = [models.Index(fields=["key", "id"], name="resourcelock_queue")]

    def __str__(self) -> str:
        return f"{self.key} ({'held' if self.granted else 'waiting'}, run {self.run_id})"


class RemoteStep(models.Model):
    """A step whose tool names a queue: a pool worker serving that queue calls the tool.

    The run's owner writes the row (pending) and waits; a pool worker claims it
    (running, with a lease it renews), calls the tool and writes the outcome; the
    owner then records the step through its journal (runs/pools.py).
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    step = models.OneToOneField(Step, on_delete=models.CASCADE, related_name="remote")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="remote_steps")
    queue = models.CharField(max_length=40)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    params = models.JSONField(default=dict, blank=True)
    # The owner's call number for the step: a retry hands the row out again with the next one.
    attempt = models.PositiveIntegerField(default=1)
    worker_id = models.CharField(max_length=100, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # A failure another call could mend (a tool error or a timeout), not a misconfigured tool.
    retryable = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["queue", "status", "id"], name="remotestep_queue")]

    def __str__(self) -> str:
        return f"{self.queue}: step {self.step_id} ({self.status})"


class WorkerBeat(models.Model):
    """A pool worker's last sign of life, and the queues it serves ("*": every queue)."""

    worker_id = models.CharField(max_length=100, unique=True)
    queues = models.JSONField(default=list)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.worker_id


class TranscriptEvent(models.Model):
    """Append-only history of a run; ``seq`` is gap-free and monotonic per run."""

    class Role(models.TextChoices):
        PLANNER = "planner"
        EXECUTOR = "executor"
        EVALUATOR = "evaluator"
        SUPERVISOR = "supervisor"
        REVIEWER = "reviewer"
        SYSTEM = "system"

    # No separate run index: the unique (run, seq) index serves every lookup by run,
    # and one index less is one page less written per event.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events", db_index=False)
    seq = models.PositiveBigIntegerField()
    role = models.CharField(max_length=12, choices=Role.choices)
    kind = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="event_unique_seq_per_run"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}"


class LlmCall(models.Model):
    """One call to a language model, for accounting: tokens, latency, cost, outcome."""

    class Purpose(models.TextChoices):
        PLAN = "plan"
        REPAIR = "repair"
        REPLAN = "replan"
        STEP = "step"
        TOOL = "tool"
        AGENT = "agent"
        WORDS = "words"  # steps in words mapped to tools (no run: runs.lifecycle.words)

    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls"
    )
    plan = models.ForeignKey(
        Plan, null=True, blank=True, on_delete=models.SET_NULL, related_name="llm_calls"
    )
    provider = models.CharField(max_length=30)
    model = models.CharField(max_length=100, blank=True)
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    # US dollars (runs/planning/pricing.py); null when the model has no price.
    cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    # Which price gave ``cost`` ("" while unpriced).
    price_source = models.CharField(max_length=120, blank=True)
    ok = models.BooleanField(default=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "id"]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} {self.purpose} ({self.tokens_in}+{self.tokens_out})"


class AgentCall(models.Model):
    """One tool call of an agent step, written before the call and after it (runs/llmtools/agent.py).

    Keyed by the step's idempotency key (the same across retries and crash takeovers),
    so a step run again replays its finished calls instead of repeating them.
    """

    class Status(models.TextChoices):
        STARTED = "started"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REFUSED = "refused"
        # Caught mid-flight on a tool that is not repeatable; a reviewer chose to retry
        # the step, so the next replay makes the call again.
        REDO = "redo"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="agent_calls")
    step_key = models.CharField(max_length=100)
    idempotency_key = models.CharField(max_length=64)
    index = models.PositiveIntegerField()
    # The model's answer that asked for the call, as text: replayed into the conversation.
    decision = models.TextField()
    tool = models.CharField(max_length=100)
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Tokens (in + out) of the model call that made the decision: summed on a replay,
    # so the step's own token budget counts what it spent before a crash or retry.
    tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["idempotency_key", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key", "index"], name="agent_call_once_per_index"
            )
        ]

    def __str__(self) -> str:
        return f"{self.step_key}#{self.index} {self.tool} {self.status}"


class Playbook(models.Model):
    """A stored plan that worked, reused by the playbook planner for similar tasks."""

    name = models.SlugField(max_length=100, unique=True)
    # The task text the plan answered; new tasks are matched against it.
    task_text = models.TextField()
    document = models.JSONField()
    source_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uses = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Workflow(models.Model):
    """A registered deterministic workflow: a plan template a planner may hand the work to.

    ``document`` is a plan whose strings may hold ``{{ params.<name> }}`` (filled from the
    planner's ``params``, checked against ``parameters_schema``) and references to the
    results so far (``{{ steps.<id>.result }}``); see runs/planning/handoff.py.
    """

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    parameters_schema = models.JSONField(default=dict, blank=True)
    document = models.JSONField()
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    """A personal API token: it acts as its user, with the user's current role.

    Only a SHA-256 of the whole token is stored; ``prefix`` (public, unique) finds
    the row so the hash comparison is a single constant-time check.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class EvalSuite(models.Model):
    """A golden suite (``runs.evals.suite``): its YAML, imported from a file or edited in the admin."""

    name = models.SlugField(max_length=100, unique=True)
    text = models.TextField()
    source = models.CharField(max_length=500, blank=True)  # the file it was imported from
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelAnswer(models.Model):
    """One provider answer to a run's model call, recorded (``runs.planning.providers.recording``).

    ``key`` identifies the exact request (provider, endpoint, whole body); the body itself is
    not kept. A run with answers is a recorded run: its golden task carries them as a cassette.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="model_answers")
    provider = models.CharField(max_length=30)
    path = models.CharField(max_length=200)
    key = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField()
    body = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "id"]

    def __str__(self) -> str:
        return f"{self.provider} /{self.path} for run {self.run_id} (HTTP {self.status})"


class SuiteRun(models.Model):
    """One ``manage.py evaluate``: its pass rate, metrics and tolerance-band breaches."""

    suite = models.ForeignKey(
        EvalSuite, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    suite_name = models.CharField(max_length=100)
    provider = models.CharField(max_length=30, blank=True)  # "" = each task's own planner
    model = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=10)  # live | record | replay
    repeat = models.PositiveSmallIntegerField(default=1)
    tasks = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    pass_rate = models.FloatField(default=0.0)
    metrics = models.JSONField(default=dict, blank=True)
    breaches = models.JSONField(default=list, blank=True)
    ok = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["suite_name", "started_at"])]

    def __str__(self) -> str:
        return f"{self.suite_name} {self.started_at:%Y-%m-%d %H:%M} {self.pass_rate:.0%}"


class SuiteTaskResult(models.Model):
    """One task of a suite run (one attempt of it with ``--repeat``)."""

    suite_run = models.ForeignKey(SuiteRun, on_delete=models.CASCADE, related_name="results")
    name = models.CharField(max_length=100)
    attempt = models.PositiveSmallIntegerField(default=1)
    planner = models.CharField(max_length=30, blank=True)
    passed = models.BooleanField(default=False)
    outcome = models.CharField(max_length=20)
    cause = models.CharField(max_length=40, blank=True)
    failures = models.JSONField(default=list, blank=True)
    faults = models.JSONField(default=list, blank=True)
    steps = models.PositiveIntegerField(default=0)
    tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["suite_run", "attempt", "id"]


class RunArchive(models.Model):
    """Marks a run imported from a snapshot: read-only history, with where it came from.

    The snapshot's review items and audit entries stay here as the document had them:
    they describe decisions taken elsewhere, so they are shown, never acted on.
    """

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="archive")
    source = models.CharField(max_length=200, blank=True)
    source_run_id = models.BigIntegerField()
    format_version = models.PositiveSmallIntegerField()
    exported_at = models.DateTimeField()
    # SHA-256 of the snapshot file as imported, so an auditor can match it to its copy.
    digest = models.CharField(max_length=64)
    submitted_by = models.CharField(max_length=150, blank=True)
    reviews = models.JSONField(default=list, blank=True)
    audit = models.JSONField(default=list, blank=True)
    # Earlier plannerwebs the run passed through before the one it was exported from.
    provenance = models.JSONField(default=list, blank=True)
    imported_at = models.DateTimeField(auto_now_add=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"Run {self.run_id} (run {self.source_run_id} of {self.source or 'a snapshot'})"


class Tombstone(models.Model):
    """What a retention rule removed, when, and how much: pages show it in place of the data."""

    class What(models.TextChoices):
        TRANSCRIPT = "transcript"
        STEP_RESULTS = "step_results"
        LLM_CALLS = "llm_calls"
        RUN = "run"

    # A plain id, not a key: the tombstone of a whole run outlives the run.
    run_id = models.BigIntegerField(db_index=True)
    what = models.CharField(max_length=16, choices=What.choices)
    rule = models.CharField(max_length=100)
    rows = models.PositiveIntegerField(default=0)
    purged_at = models.DateTimeField()
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run_id", "what"]
        constraints = [
            models.UniqueConstraint(fields=["run_id", "what"], name="tombstone_once_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.what} of run {self.run_id} purged {self.purged_at:%Y-%m-%d}"
