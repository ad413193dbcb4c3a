"""plannerweb settings: one module, configured from the environment with safe embedded defaults.

Embedded default (a laptop): SQLite in WAL mode, the in-memory channel layer and
the run worker inside the serving process. Scale-out: set DATABASE_URL to
PostgreSQL and REDIS_URL; nothing else changes.
"""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import dj_database_url

from plannerweb.env import (
    envbool,
    envfloat,
    envint,
    envjson,
    envlist,
    envoptional_secret,
    envsecret,
    envstr,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("PLANNERWEB_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = envsecret("SECRET_KEY", keep_in=VAR_DIR / "secret_key")
DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    # Serves the API docs page (Swagger UI) from its own static files, not a CDN.
    "ninja",
    "runs",
    "reviews",
    # After runs: its db_worker command shadows django_tasks_db's.
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ from the serving process itself (Daphne has no static handler).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "plannerweb.urls"
ASGI_APPLICATION = "plannerweb.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "runs.views.context_processors.roles",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASE_URL = envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
# Connections are reused (health-checked first) so a worker loop or a request does not pay a
# new connection (several ms on PostgreSQL) each time. On PostgreSQL they come from a bounded
# pool per process: under ASGI each request runs in a thread of its own, and a connection kept
# per thread (CONN_MAX_AGE) would outlive its thread and exhaust the server's max_connections.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and envint(
    "DATABASE_POOL_MAX_SIZE", 16
):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # closing a connection returns it to the pool
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": envint("DATABASE_POOL_MIN_SIZE", 1),
        "max_size": envint("DATABASE_POOL_MAX_SIZE", 16),
        "timeout": envfloat("DATABASE_POOL_TIMEOUT", 20.0),
        "max_idle": 300.0,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so two writers queue on
        # busy_timeout instead of failing with "database is locked" on upgrade.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"
        ),
    }
    # Tests use a real file (not :memory:) so the executor's writer thread and
    # the test thread share one database, as in production.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels -----------------------------------------------------------------
REDIS_URL = envstr("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: a group message is one PUBLISH that each Daphne receives once and hands
            # to its own consumers, where the list-based RedisChannelLayer writes one copy per
            # consumer and each Daphne pops them one round trip at a time (bench/events.py,
            # 200 clients: p95 175-204 ms against 29-55 ms). Pub/sub delivers at most once; the run
            # consumer treats a lost message as it does one dropped by a full channel of the
            # list layer: the next event's seq gap is filled from the database.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # Several deployments (or test runs) may share one Redis: keep their groups apart.
            "CONFIG": {"hosts": [REDIS_URL], "prefix": envstr("REDIS_PREFIX", "plannerweb")},
        }
    }
else:
    # channels' in-memory layer, minus its O(clients²) expiry sweep (see runs/layers.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "runs.layers.EmbeddedChannelLayer"}}

# --- Auth -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "runs:list"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# WhiteNoise warns (an error under pytest) when the folder is missing before collectstatic.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    # Where retention writes a run's snapshot before purging it (PLANNERWEB_PURGE_SNAPSHOTS):
    # a folder here, or object storage through a django-storages backend and its options.
    "snapshots": envjson(
        "PLANNERWEB_SNAPSHOT_STORAGE",
        {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(VAR_DIR / "snapshots")},
        },
    ),
}
# Without collectstatic (tests, development) serve straight from the finders.
WHITENOISE_USE_FINDERS = True

# LOG_FORMAT=json: one JSON object a line; both say the run and step a line is about
# (docs/observability.md, "Logs"). Refusals (401, 403, 404, 409, 422) are one line each.
LOG_FORMAT = envstr("LOG_FORMAT", "text")
if LOG_FORMAT not in ("text", "json"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "runs.telemetry.logs.ContextFilter"},
        "refusals": {"()": "runs.telemetry.logs.RefusalFilter"},
    },
    "formatters": {
        "text": {
            "()": "runs.telemetry.logs.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "runs.telemetry.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context", "refusals"],
        }
    },
    "loggers": {
        "django.request": {"filters": ["refusals"]},
        "django.security": {"filters": ["refusals"]},
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
}

# --- Metrics (docs/observability.md, "Metrics") ---------------------------------
# /metrics answers a scraper sending "Authorization: Bearer <token>" or connecting from an
# allowed address or network (behind a proxy that is the proxy's address).
PLANNERWEB_METRICS_TOKEN = envoptional_secret("PLANNERWEB_METRICS_TOKEN")
PLANNERWEB_METRICS_ALLOW = envlist("PLANNERWEB_METRICS_ALLOW", ["127.0.0.1/32", "::1/128"])
for _network in PLANNERWEB_METRICS_ALLOW:
    try:
        ip_network(_network, strict=False)
    except ValueError as exc:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"PLANNERWEB_METRICS_ALLOW: {exc}") from None

# --- Background work: the Django Tasks API on the durable database backend -------
# Tasks carry ids only (runs.tasks); `manage.py db_worker` processes, or worker
# threads inside the serving process (embedded default), execute them.
# Two queues: "default" for runs, "notifications" for webhook and email deliveries, so a
# slow receiver never holds a run's worker (docs/reviews.md, "Notifications").
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default", "notifications"],
    }
}

# --- plannerweb -----------------------------------------------------------------
# Where runs execute: "inprocess" (a worker thread inside the serving process,
# the embedded default) or "none" (nothing in this process executes runs).
PLANNERWEB_WORKER = envstr("PLANNERWEB_WORKER", "inprocess")
PLANNERWEB_WORKER_THREADS = envint("PLANNERWEB_WORKER_THREADS", 4)
# How many runs one worker (a db_worker process) executes at once on its event
# loop (runs/lifecycle/host.py; docs/operations.md, "Sizing workers"). 1: one run
# at a time, committing inline (no host). Waiting runs cost little: raise it for
# agents whose steps wait on models, deploys and locks.
PLANNERWEB_WORKER_CONCURRENCY = envint("PLANNERWEB_WORKER_CONCURRENCY", 100)
# Writer threads (one database connection each) that commit for the runs a worker
# holds; SQLite always uses one.
PLANNERWEB_WORKER_WRITERS = envint("PLANNERWEB_WORKER_WRITERS", 4)
# Threads that plan, claim and load runs (a planner's model call happens there).
PLANNERWEB_WORKER_PREPARE_THREADS = envint("PLANNERWEB_WORKER_PREPARE_THREADS", 4)
# Threads for sync python tools and the executors' ORM helpers, per worker.
PLANNERWEB_WORKER_TOOL_THREADS = envint("PLANNERWEB_WORKER_TOOL_THREADS", 16)
# Steps one worker runs at once, shared fairly among the runs it holds.
PLANNERWEB_WORKER_MAX_STEPS = envint("PLANNERWEB_WORKER_MAX_STEPS", 1000)
# How long an idle worker waits before looking for tasks again. Enqueues wake
# workers at once (threads of the enqueuing process directly; on PostgreSQL
# every process through NOTIFY), so this only bounds the pick-up time of a task
# enqueued by another process on SQLite, or of a lost notification. Each idle
# worker costs the database one indexed query per interval.
PLANNERWEB_WORKER_POLL_SECONDS = envfloat("PLANNERWEB_WORKER_POLL_SECONDS", 1.0)
# On PostgreSQL, idle workers LISTEN for enqueues (one extra connection each).
PLANNERWEB_WORKER_LISTEN = envbool("PLANNERWEB_WORKER_LISTEN", True)
# How often a worker looks for runs that lost their worker (expired lease) or
# their task (queued, never picked up) and enqueues them again.
PLANNERWEB_RECOVERY_SECONDS = envfloat("PLANNERWEB_RECOVERY_SECONDS", 5.0)
# How often a running run heartbeats and looks for a cancel request made elsewhere.
PLANNERWEB_HEARTBEAT_SECONDS = envfloat("PLANNERWEB_HEARTBEAT_SECONDS", 1.0)
PLANNERWEB_MAX_PLAN_STEPS = envint("PLANNERWEB_MAX_PLAN_STEPS", 2000)
PLANNERWEB_DEFAULT_MAX_PARALLEL = envint("PLANNERWEB_DEFAULT_MAX_PARALLEL", 8)
PLANNERWEB_RETRY_BACKOFF_SECONDS = envfloat("PLANNERWEB_RETRY_BACKOFF_SECONDS", 1.0)
# PostgreSQL: the executors' own connections prepare their one write statement (the call of
# the journal's write function), parsed and planned once per connection. Turn off behind a transaction-mode pooler that cannot keep prepared statements
# (PgBouncer before 1.21, or without max_prepared_statements).
PLANNERWEB_JOURNAL_PREPARED = envbool("PLANNERWEB_JOURNAL_PREPARED", True)
# How often a step waiting for a resource lock asks the database again (runs/execution/locks.py).
PLANNERWEB_LOCK_POLL_SECONDS = envfloat("PLANNERWEB_LOCK_POLL_SECONDS", 0.25)
# Executor pools (docs/operations.md): how often a run's owner looks at a step a pool
# worker executes, how often an idle pool worker looks for work, and the queues the
# in-process worker serves ("*": every queue; empty: none, such steps wait for a db_worker).
PLANNERWEB_POOL_POLL_SECONDS = envfloat("PLANNERWEB_POOL_POLL_SECONDS", 0.25)
PLANNERWEB_POOL_THREADS = envint("PLANNERWEB_POOL_THREADS", 4)
PLANNERWEB_EMBEDDED_POOL_QUEUES = envlist("PLANNERWEB_EMBEDDED_POOL_QUEUES", ["*"])
PLANNERWEB_OUTPUT_CAP_BYTES = envint("PLANNERWEB_OUTPUT_CAP_BYTES", 64 * 1024)
# Folder the demo shell tools work in (their "production database", outbox, backups).
# The login page lists the demo accounts (the README's first command turns this on).
PLANNERWEB_SHOW_DEMO_LOGINS = envbool("PLANNERWEB_SHOW_DEMO_LOGINS", False)
PLANNERWEB_SANDBOX_DIR = Path(envstr("PLANNERWEB_SANDBOX_DIR", str(VAR_DIR / "sandbox")))
# Where ``manage.py evaluate NAME`` looks for NAME.yaml (then in the demo's suites).
PLANNERWEB_EVAL_DIRS = envlist("PLANNERWEB_EVAL_DIRS", ["evals"])
# Keep every provider answer of every run (runs/planning/providers/recording.py), so a
# finished run saved as a golden task replays offline with its cassette.
PLANNERWEB_RECORD_MODEL_ANSWERS = envbool("PLANNERWEB_RECORD_MODEL_ANSWERS", False)

# --- review queue ---------------------------------------------------------------
# The global approval policy until an admin saves one: always | sensitive | low_confidence | never.
PLANNERWEB_APPROVAL_MODE = envstr("PLANNERWEB_APPROVAL_MODE", "never")
if PLANNERWEB_APPROVAL_MODE not in {"always", "sensitive", "low_confidence", "never"}:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "PLANNERWEB_APPROVAL_MODE must be always, sensitive, low_confidence or never, "
        f"got {PLANNERWEB_APPROVAL_MODE!r}"
    )
# Plan, then confirm: a planner's plan is shown to its submitter before it runs.
# auto (when the plan's confidence is below PLANNERWEB_CONFIRM_BELOW_CONFIDENCE or it
# uses a sensitive tool) | always | never; a task may choose its own at submission.
PLANNERWEB_CONFIRM_PLANS = envstr("PLANNERWEB_CONFIRM_PLANS", "auto")
if PLANNERWEB_CONFIRM_PLANS not in {"auto", "always", "never"}:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"PLANNERWEB_CONFIRM_PLANS must be auto, always or never, got {PLANNERWEB_CONFIRM_PLANS!r}"
    )
PLANNERWEB_CONFIRM_BELOW_CONFIDENCE = envfloat("PLANNERWEB_CONFIRM_BELOW_CONFIDENCE", 0.7)
# A step on a sensitive tool whose confidence is below this pauses for a reviewer (per-tool override in admin).
PLANNERWEB_GATE_CONFIDENCE = envfloat("PLANNERWEB_GATE_CONFIDENCE", 0.6)
# How deep subplan steps may nest: a top-level run is depth 0, its child runs depth 1, ...
# A subplan step that would start a run deeper than this fails (runs/lifecycle/subplans.py).
PLANNERWEB_SUBPLAN_MAX_DEPTH = envint("PLANNERWEB_SUBPLAN_MAX_DEPTH", 3)
# Supervisor budgets per run (0 = no limit); tasks may override each (runs/execution/budgets.py).
PLANNERWEB_BUDGET_MAX_STEPS = envint("PLANNERWEB_BUDGET_MAX_STEPS", 0)
PLANNERWEB_BUDGET_MAX_TOKENS = envint("PLANNERWEB_BUDGET_MAX_TOKENS", 0)
PLANNERWEB_BUDGET_MAX_COST = envfloat("PLANNERWEB_BUDGET_MAX_COST", 0.0)
PLANNERWEB_BUDGET_MAX_WALL_SECONDS = envint("PLANNERWEB_BUDGET_MAX_WALL_SECONDS", 0)
# Four-eyes: nobody approves the plan of a task they submitted.
PLANNERWEB_FOUR_EYES = envbool("PLANNERWEB_FOUR_EYES", True)

# --- Planners (runs/planning/) ----------------------------------------------------
# Default planner for tasks that name none: openai, anthropic, compatible (any
# OpenAI-compatible server: llama.cpp, vLLM, Ollama), chain (the ensemble below),
# playbook (offline: reuse stored plans) or manual (wait for a hand-written plan).
# API keys are never settings: providers read OPENAI_API_KEY, ANTHROPIC_API_KEY and
# PLANNERWEB_LOCAL_API_KEY (or *_FILE) from the environment at call time.
PLANNERWEB_PLANNER = envstr("PLANNERWEB_PLANNER", "playbook")
PLANNERWEB_PLANNER_MODEL = envstr("PLANNERWEB_PLANNER_MODEL", "")  # "" = the provider's default
PLANNERWEB_PLANNER_TEMPERATURE = envfloat("PLANNERWEB_PLANNER_TEMPERATURE", 0.2)
PLANNERWEB_PLANNER_MAX_TOKENS = envint("PLANNERWEB_PLANNER_MAX_TOKENS", 4096)
PLANNERWEB_PLANNER_MODE = envstr("PLANNERWEB_PLANNER_MODE", "auto")
PLANNERWEB_PLANNER_TIMEOUT_SECONDS = envfloat("PLANNERWEB_PLANNER_TIMEOUT_SECONDS", 120.0)
# SDK-level retries of 429/5xx/timeouts (with the SDK's backoff and Retry-After).
PLANNERWEB_PLANNER_SDK_RETRIES = envint("PLANNERWEB_PLANNER_SDK_RETRIES", 2)
# Repair rounds after an invalid plan (validation problems are fed back each round).
PLANNERWEB_PLANNER_REPAIR_ROUNDS = envint("PLANNERWEB_PLANNER_REPAIR_ROUNDS", 2)
PLANNERWEB_MAX_REPLANS = envint("PLANNERWEB_MAX_REPLANS", 3)
# Times a run may be claimed for planning (a worker dying mid-call, a plan failing to store)
# before it escalates as planner_failed instead of being planned again.
PLANNERWEB_MAX_PLANNING_ATTEMPTS = envint("PLANNERWEB_MAX_PLANNING_ATTEMPTS", 3)
# Iterative mode (one model call per step): the most steps a task may take.
PLANNERWEB_ITERATIVE_MAX_STEPS = envint("PLANNERWEB_ITERATIVE_MAX_STEPS", 20)
PLANNERWEB_OPENAI_MODEL = envstr("PLANNERWEB_OPENAI_MODEL", "gpt-4.1-mini")
PLANNERWEB_OPENAI_BASE_URL = envstr("PLANNERWEB_OPENAI_BASE_URL", "")  # "" = api.openai.com
PLANNERWEB_ANTHROPIC_MODEL = envstr("PLANNERWEB_ANTHROPIC_MODEL", "claude-sonnet-4-6")
PLANNERWEB_ANTHROPIC_BASE_URL = envstr("PLANNERWEB_ANTHROPIC_BASE_URL", "")
PLANNERWEB_LOCAL_BASE_URL = envstr("PLANNERWEB_LOCAL_BASE_URL", "http://127.0.0.1:8080/v1")
PLANNERWEB_LOCAL_MODEL = envstr("PLANNERWEB_LOCAL_MODEL", "local-model")
# Ensemble ("chain"): tried in order; the next one plans when a plan's confidence is
# below the threshold or it is still invalid after the repair rounds.
PLANNERWEB_PLANNER_CHAIN = envjson(
    "PLANNERWEB_PLANNER_CHAIN",
    [{"provider": "openai", "model": "gpt-4.1-mini"}, {"provider": "openai", "model": "gpt-4.1"}],
)
PLANNERWEB_ENSEMBLE_MIN_CONFIDENCE = envfloat("PLANNERWEB_ENSEMBLE_MIN_CONFIDENCE", 0.6)
# Playbook planner: the lowest BM25 similarity (0..1, the share of the task's words a stored
# plan or tool holds, by weight) that counts as a match; bench/matching.py shows the trade-off.
PLANNERWEB_PLAYBOOK_MIN_SIMILARITY = envfloat("PLANNERWEB_PLAYBOOK_MIN_SIMILARITY", 0.5)
# Model planners first look for an approved plan of a near-identical task (the same matching)
# and reuse it at or above this similarity, without a model call; 0 turns reuse off.
PLANNERWEB_PLAN_REUSE_MIN_SIMILARITY = envfloat("PLANNERWEB_PLAN_REUSE_MIN_SIMILARITY", 0.9)
# Model prices come from the genai-prices package (docs/observability.md, "Prices");
# this override wins for the models it names, in US dollars per million tokens:
# {"model": {"input": x, "output": y}} (a dated snapshot "m-2025-01-01" takes m's price).
PLANNERWEB_LLM_PRICES = envjson("PLANNERWEB_LLM_PRICES", {})
# Off: only the override prices calls; other models are unpriced.
PLANNERWEB_LLM_PRICES_PACKAGE = envbool("PLANNERWEB_LLM_PRICES_PACKAGE", True)
# Redaction (runs/redaction.py) of everything a run stores: secret shapes and the values
# of these API-key variables (or of the files their *_FILE twins name) always; the
# personal-data kinds listed (email, phone); and extra regular expressions, a list
# (kind "custom") or an object {"kind": "regex"}.
PLANNERWEB_REDACT_ENV = envlist(
    "PLANNERWEB_REDACT_ENV", ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PLANNERWEB_LOCAL_API_KEY"]
)
PLANNERWEB_REDACT_PII = envlist("PLANNERWEB_REDACT_PII", ["email", "phone"])
PLANNERWEB_REDACT_PATTERNS = envjson("PLANNERWEB_REDACT_PATTERNS", [])

# --- Notifications (docs/reviews.md, "Notifications") ----------------------------
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

# The public origin links in webhooks and emails point to.
PLANNERWEB_BASE_URL = envstr("PLANNERWEB_BASE_URL", "http://localhost:8000")
# "Nears its SLA": this share of the SLA has passed, or, when MINUTES > 0, that many
# minutes are left.
PLANNERWEB_NOTIFY_NEAR_SLA_PERCENT = envint("PLANNERWEB_NOTIFY_NEAR_SLA_PERCENT", 80)
PLANNERWEB_NOTIFY_NEAR_SLA_MINUTES = envint("PLANNERWEB_NOTIFY_NEAR_SLA_MINUTES", 0)
# Each webhook call's connect and read timeout; attempts per delivery; the first retry's
# delay (doubling after each failed attempt).
PLANNERWEB_NOTIFY_TIMEOUT_SECONDS = envfloat("PLANNERWEB_NOTIFY_TIMEOUT_SECONDS", 5.0)
PLANNERWEB_NOTIFY_MAX_ATTEMPTS = envint("PLANNERWEB_NOTIFY_MAX_ATTEMPTS", 5)
PLANNERWEB_NOTIFY_BACKOFF_SECONDS = envfloat("PLANNERWEB_NOTIFY_BACKOFF_SECONDS", 30.0)
# Worker threads inside the serving process that deliver notifications (embedded default).
PLANNERWEB_NOTIFY_WORKER_THREADS = envint("PLANNERWEB_NOTIFY_WORKER_THREADS", 1)
if not 1 <= PLANNERWEB_NOTIFY_NEAR_SLA_PERCENT <= 99:
    raise ImproperlyConfigured("PLANNERWEB_NOTIFY_NEAR_SLA_PERCENT must be between 1 and 99")
if PLANNERWEB_NOTIFY_MAX_ATTEMPTS < 1:
    raise ImproperlyConfigured("PLANNERWEB_NOTIFY_MAX_ATTEMPTS must be at least 1")

# Email through Django's backend (SMTP unless EMAIL_BACKEND names another).
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envoptional_secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "plannerweb@localhost")

# Retention (runs/lifecycle/retention.py, docs/state-store.md): days after a run finished
# before its transcript, its step results and errors, its model prompts and responses,
# or the whole run are purged; 0 keeps them forever. A task may choose its own whole-run
# days at submission, between the MIN and MAX bounds.
PLANNERWEB_RETAIN_TRANSCRIPT_DAYS = envint("PLANNERWEB_RETAIN_TRANSCRIPT_DAYS", 0)
PLANNERWEB_RETAIN_STEP_RESULTS_DAYS = envint("PLANNERWEB_RETAIN_STEP_RESULTS_DAYS", 0)
PLANNERWEB_RETAIN_MODEL_IO_DAYS = envint("PLANNERWEB_RETAIN_MODEL_IO_DAYS", 0)
PLANNERWEB_RETAIN_RUNS_DAYS = envint("PLANNERWEB_RETAIN_RUNS_DAYS", 0)
PLANNERWEB_RETAIN_RUNS_MIN_DAYS = envint("PLANNERWEB_RETAIN_RUNS_MIN_DAYS", 1)
PLANNERWEB_RETAIN_RUNS_MAX_DAYS = envint("PLANNERWEB_RETAIN_RUNS_MAX_DAYS", 3650)
# Rows deleted or thinned per transaction: each batch holds the write lock only briefly.
PLANNERWEB_PURGE_BATCH_ROWS = envint("PLANNERWEB_PURGE_BATCH_ROWS", 500)
# How often a worker applies the retention rules (0: only ``manage.py purge`` does).
PLANNERWEB_PURGE_INTERVAL_SECONDS = envfloat("PLANNERWEB_PURGE_INTERVAL_SECONDS", 3600.0)
# Clarifying questions a planner may ask per run (0: it never asks; runs/lifecycle/questions.py).
PLANNERWEB_MAX_QUESTIONS = envint("PLANNERWEB_MAX_QUESTIONS", 3)
# Write each run's snapshot to STORAGES["snapshots"] before retention purges the whole run.
PLANNERWEB_PURGE_SNAPSHOTS = envbool("PLANNERWEB_PURGE_SNAPSHOTS", False)
