"""plannerweb settings: one module, configured from the environment with safe embedded defaults.

Embedded default (a laptop): SQLite in WAL mode, the in-memory channel layer and
the run worker inside the serving process. Scale-out: set DATABASE_URL to
PostgreSQL and REDIS_URL; nothing else changes.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from plannerweb.env import envbool, envfloat, envint, envlist, envsecret, envstr

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
    "runs",
    "reviews",
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
                "runs.context_processors.roles",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASE_URL = envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
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
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
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
}
# Without collectstatic (tests, development) serve straight from the finders.
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
}

# --- plannerweb -----------------------------------------------------------------
# Where runs execute: "inprocess" (a worker thread inside the serving process,
# the embedded default) or "none" (nothing in this process executes runs).
PLANNERWEB_WORKER = envstr("PLANNERWEB_WORKER", "inprocess")
PLANNERWEB_WORKER_THREADS = envint("PLANNERWEB_WORKER_THREADS", 4)
PLANNERWEB_WORKER_POLL_SECONDS = envfloat("PLANNERWEB_WORKER_POLL_SECONDS", 1.0)
# How often a running run heartbeats and looks for a cancel request made elsewhere.
PLANNERWEB_HEARTBEAT_SECONDS = envfloat("PLANNERWEB_HEARTBEAT_SECONDS", 1.0)
PLANNERWEB_MAX_PLAN_STEPS = envint("PLANNERWEB_MAX_PLAN_STEPS", 2000)
PLANNERWEB_DEFAULT_MAX_PARALLEL = envint("PLANNERWEB_DEFAULT_MAX_PARALLEL", 8)
PLANNERWEB_RETRY_BACKOFF_SECONDS = envfloat("PLANNERWEB_RETRY_BACKOFF_SECONDS", 1.0)
PLANNERWEB_OUTPUT_CAP_BYTES = envint("PLANNERWEB_OUTPUT_CAP_BYTES", 64 * 1024)
# Folder the demo shell tools work in (their "production database", outbox, backups).
# The login page lists the demo accounts (the README's first command turns this on).
PLANNERWEB_SHOW_DEMO_LOGINS = envbool("PLANNERWEB_SHOW_DEMO_LOGINS", False)
PLANNERWEB_SANDBOX_DIR = Path(envstr("PLANNERWEB_SANDBOX_DIR", str(VAR_DIR / "sandbox")))
