"""Settings helpers that read the environment and fail loudly on bad values."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str) -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def envfloat(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def envoptional_secret(name: str) -> str:
    """Return a secret from NAME or the file NAME_FILE names; "" when neither is set."""
    if value := os.environ.get(name):
        return value
    if path := os.environ.get(f"{name}_FILE"):
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return ""


def envsecret(name: str, *, keep_in: Path) -> str:
    """Return a secret from NAME, NAME_FILE, or a generated file kept across restarts.

    The generated file lives outside git (``var/``) so a laptop install never
    needs a hand-made secret and no secret is ever committed.
    """
    if value := envoptional_secret(name):
        return value
    if keep_in.exists():
        return keep_in.read_text().strip()
    keep_in.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(50)
    keep_in.touch(mode=0o600)
    keep_in.write_text(value)
    return value


def envjson(name: str, default: Any) -> Any:
    """A JSON value (object or list) from NAME; a syntax error names the variable."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} must be JSON: {exc.msg} at column {exc.colno}") from exc
