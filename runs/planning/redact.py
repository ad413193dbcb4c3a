"""Redaction of secrets and personal data from everything the planner stores or logs.

Applied to every prompt and response before it reaches the transcript, the
``LlmCall`` row or a log line: the configured patterns
(``settings.PLANNERWEB_REDACT_PATTERNS``: emails, phone numbers, API-key shapes
by default) plus the literal values of the API keys in the environment, so a key
of an unusual shape is caught too.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Any

from django.conf import settings

MASK = "[REDACTED]"
# Environment variables whose values are secrets wherever they show up.
SECRET_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PLANNERWEB_LOCAL_API_KEY")
_MIN_SECRET = 8  # shorter values would mask ordinary words


@lru_cache(maxsize=8)
def _compile(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    # One pattern each: a configured pattern may carry its own global flags, e.g. (?i).
    return tuple(re.compile(p) for p in patterns)


def _secret_values() -> list[str]:
    values = []
    for name in SECRET_ENV:
        value = os.environ.get(name, "").strip()
        if len(value) >= _MIN_SECRET:
            values.append(value)
    return values


def redact_text(text: str) -> str:
    """``text`` with every secret value and configured pattern replaced by ``[REDACTED]``."""
    for secret in _secret_values():
        text = text.replace(secret, MASK)
    for pattern in _compile(tuple(settings.PLANNERWEB_REDACT_PATTERNS)):
        text = pattern.sub(MASK, text)
    return text


def redact(value: Any) -> Any:
    """Redact every string inside ``value`` (JSON-like data), keys included."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact_text(str(k)): redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
