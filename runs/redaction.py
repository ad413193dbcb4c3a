"""Redaction: the one policy for secrets and personal data in everything a run stores.

Applied at every storage boundary (task text, plan versions and their steps, step
results and errors, transcript events, model calls, review items) before a value
is written, so the database, the pages, the API and the websocket frames never
see the original. What is redacted:

* always: secret shapes (OpenAI and Anthropic keys, AWS access key ids, GitHub and
  Slack tokens, bearer tokens, private key blocks, ``password=...``-style pairs and
  values under secret-looking keys) and the values of the environment variables
  ``settings.PLANNERWEB_REDACT_ENV`` names (the model providers' API keys);
* the personal-data kinds ``settings.PLANNERWEB_REDACT_PII`` lists (``email``,
  ``phone``), and the extra expressions of ``settings.PLANNERWEB_REDACT_PATTERNS``.

Placeholders are stable within a run: ``[REDACTED:email:1]`` is the same address
everywhere in that run, so ``{{ steps.x.result... }}`` references line up. The
number comes from ``Run.redaction``: ``{"salt": ..., "seen": {kind: {digest: n}}}``
where ``digest`` is an HMAC-SHA256 keyed by ``SECRET_KEY`` over the run's random
salt, the kind and the value. The original value is never stored; numbers are
given out under the run's row lock, so every process agrees on them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from runs.models import Run

PLACEHOLDER = "[REDACTED:{kind}:{n}]"
_MIN_SECRET = 8  # shorter environment values would mask ordinary words
# What each kind is called on the run page.
KIND_LABELS = {
    "secret": "configured API key",
    "private_key": "private key",
    "anthropic_key": "Anthropic key",
    "openai_key": "OpenAI-style key",
    "aws_key": "AWS access key",
    "github_token": "GitHub token",
    "slack_token": "Slack token",
    "bearer_token": "bearer token",
    "password": "password or secret value",
    "email": "email address",
    "phone": "phone number",
    "custom": "custom pattern value",
}
_KEYWORDS = (
    r"password|passwd|passphrase|pwd|secret|client[_-]?secret|api[_-]?key|apikey"
    r"|access[_-]?key|private[_-]?key|auth[_-]?token|access[_-]?token|token"
)
# Secret shapes, most specific first. A group named "v" is the part replaced
# (the key of a pair and the word "Bearer" stay readable).
SECRET_SHAPES: tuple[tuple[str, str], ...] = (
    (
        "private_key",
        r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----"
        r"(?:[\s\S]*?-----END[A-Z ]{0,40}PRIVATE KEY-----|[\s\S]*)",
    ),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_-]{16,}"),
    ("openai_key", r"\bsk-[A-Za-z0-9_-]{16,}"),
    ("aws_key", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    ("slack_token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    ("bearer_token", r"(?i:\bbearer\s+)(?P<v>[A-Za-z0-9._~+/-]{16,}=*)"),
    (
        "password",
        rf"(?i:(?<![A-Za-z0-9])(?:{_KEYWORDS}))[\"']?\s*[=:]\s*[\"']?"
        r"(?P<v>(?!\[REDACTED:)[^\s\"'&,;<>\\]{3,})",
    ),
)
PII_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "phone": (
        r"(?<![\w.+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?\d{3,4}"
        r"(?![\w.])"
    ),
}
# Cheap signs that a kind may be present: substrings as written, substrings of the lowered
# text, or an expression with a literal start (which the regex engine finds quickly). Only
# the kinds whose sign shows are searched for, so a text without one costs a few substring
# tests (a kind's own expression tries every position: up to ~1 µs a character).
_HINTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str | None]] = {
    "private_key": (("-----BEGIN",), (), None),
    "anthropic_key": (("sk-ant-",), (), None),
    "openai_key": ((), (), r"sk-[A-Za-z0-9_-]{16}"),
    "aws_key": (("AKIA", "ASIA"), (), None),
    "github_token": (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), (), None),
    "slack_token": (("xox",), (), None),
    "bearer_token": ((), ("bearer",), None),
    "password": (
        (),
        ("passw", "passphrase", "pwd", "secret", "token", "apikey", "api_key", "api-key")
        + ("accesskey", "access_key", "access-key", "privatekey", "private_key", "private-key"),
        None,
    ),
    "email": (("@",), (), None),
    "phone": ((), (), r"\d{3}[ .-]?\d{3}"),  # a number's last two groups, at their shortest
}
_MIN_TEXT = 6  # the shortest thing redacted: an address such as a@b.io
# A mapping key whose string value is a secret whatever it looks like.
_SECRET_KEY = re.compile(rf"(?i)(?:.*[_-])?(?:{_KEYWORDS})")
_LEADING_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")


@dataclass(frozen=True)
class Rule:
    """One kind: its expression and the cheap signs that it may match."""

    kind: str
    pattern: re.Pattern[str]
    valued: bool  # only the group "v" is replaced (the key of a pair stays readable)
    plain: tuple[str, ...]
    lowered: tuple[str, ...]
    probe: re.Pattern[str] | None
    always: bool  # no signs known (a configured expression): always searched


@dataclass(frozen=True)
class Policy:
    """The compiled policy: a rule per kind, most specific first."""

    rules: tuple[Rule, ...]
    literals: dict[str, str]  # an environment secret as matched (raw or JSON-escaped) → raw
    # Every rule's signs at once, for the common answer "none shows" in one pass.
    plain: tuple[str, ...]
    lowered: tuple[str, ...]
    probes: tuple[re.Pattern[str], ...]
    always: bool

    def _any_sign(self, text: str) -> bool:
        for s in self.plain:
            if s in text:
                return True
        if self.lowered:
            lower = text.lower()
            for s in self.lowered:
                if s in lower:
                    return True
        return any(p.search(text) is not None for p in self.probes)

    def candidates(self, text: str) -> list[Rule]:
        """The rules whose signs show in ``text`` (none: nothing to redact)."""
        if len(text) < _MIN_TEXT or not (self.always or self._any_sign(text)):
            return []
        lower: str | None = None
        found = []
        for rule in self.rules:
            if rule.always or any(s in text for s in rule.plain):
                found.append(rule)
            elif rule.lowered:
                if lower is None:
                    lower = text.lower()
                if any(s in lower for s in rule.lowered):
                    found.append(rule)
            elif rule.probe is not None and rule.probe.search(text) is not None:
                found.append(rule)
        return found


def _scoped(expr: str) -> str:
    """A configured expression with leading global flags made local: ``(?i)x`` → ``(?i:x)``."""
    match = _LEADING_FLAGS.match(expr)
    return f"(?{match[1]}:{expr[match.end() :]})" if match else expr


def _rule(kind: str, expr: str, plain: tuple[str, ...] = ()) -> Rule:
    hint_plain, lowered, probe = _HINTS.get(kind, ((), (), None))
    plain = plain or hint_plain
    return Rule(
        kind,
        re.compile(expr),
        "(?P<v>" in expr,
        plain,
        lowered,
        re.compile(probe) if probe else None,
        always=not (plain or lowered or probe),
    )


@lru_cache(maxsize=8)
def _compile(
    pii: tuple[str, ...], extra: tuple[tuple[str, str], ...], literals: tuple[str, ...]
) -> Policy:
    spelled: dict[str, str] = {}
    for value in sorted(literals, key=len, reverse=True):
        for form in (value, json.dumps(value)[1:-1]):
            spelled[form] = value
    rules = []
    if spelled:
        forms = sorted(spelled, key=len, reverse=True)
        rules.append(_rule("secret", "|".join(re.escape(f) for f in forms), tuple(forms)))
    rules += [_rule(kind, expr) for kind, expr in SECRET_SHAPES]
    rules += [_rule(kind, PII_PATTERNS[kind]) for kind in pii if kind in PII_PATTERNS]
    rules += [_rule(kind, _scoped(expr)) for kind, expr in extra]
    return Policy(
        tuple(rules),
        spelled,
        tuple(dict.fromkeys(s for r in rules for s in r.plain)),
        tuple(dict.fromkeys(s for r in rules for s in r.lowered)),
        tuple(r.probe for r in rules if r.probe is not None),
        any(r.always for r in rules),
    )


@lru_cache(maxsize=32)
def _file_text(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def secret_values() -> tuple[str, ...]:
    """The values of the configured API-key variables (``NAME`` or the file ``NAME_FILE`` names)."""
    values = []
    for name in settings.PLANNERWEB_REDACT_ENV:
        value = os.environ.get(name, "").strip()
        if not value and os.environ.get(f"{name}_FILE"):
            value = _file_text(os.environ[f"{name}_FILE"])
        if len(value) >= _MIN_SECRET:
            values.append(value)
    return tuple(values)


def _extra_patterns() -> tuple[tuple[str, str], ...]:
    extra = settings.PLANNERWEB_REDACT_PATTERNS
    if isinstance(extra, dict):
        return tuple((str(k), str(v)) for k, v in extra.items())
    return tuple(("custom", str(p)) for p in extra or ())


def policy() -> Policy:
    """The policy the settings and the environment describe now (compiled once per change)."""
    return _compile(tuple(settings.PLANNERWEB_REDACT_PII), _extra_patterns(), secret_values())


def _unescaped(text: str) -> str:
    """JSON text with its common escapes opened, so ``\\nsk-...`` is seen at a word start."""
    for escape, plain in (('\\"', '"'), ("\\n", "\n"), ("\\t", "\t"), ("\\r", "\r")):
        text = text.replace(escape, plain)
    return text.replace("\\\\", " ")


# --------------------------------------------------------------------------- numbering
def digest(salt: str, kind: str, value: str) -> str:
    """The keyed hash a value is known by in a run's state (never the value itself)."""
    message = f"{salt}\0{kind}\0{value}".encode("utf-8", "surrogatepass")
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def assign(state: Any, kind: str, value: str) -> tuple[int, dict[str, Any] | None]:
    """The number of ``value`` in a run's ``state``; the new state to store, or None if unchanged."""
    state = dict(state) if isinstance(state, dict) else {}
    salt = state.get("salt") or secrets.token_hex(16)
    state["salt"] = salt
    seen = {k: dict(v) for k, v in (state.get("seen") or {}).items()}
    state["seen"] = seen
    key = digest(salt, kind, value)
    known = seen.setdefault(kind, {})
    if key in known:
        return int(known[key]), None
    known[key] = len(known) + 1
    return known[key], state


def _orm_allocate(run_id: int, kind: str, value: str) -> int:
    with transaction.atomic():
        rows = Run.objects.filter(pk=run_id)
        if connection.features.has_select_for_update:
            rows = rows.select_for_update()
        state = rows.values_list("redaction", flat=True).get()
        n, new = assign(state, kind, value)
        if new is not None:
            Run.objects.filter(pk=run_id).update(redaction=new)
    return n


Allocator = Callable[[int, str, str], int]


# --------------------------------------------------------------------------- redactor
class Redactor:
    """Redacts for one run (or for none: numbers then count within this object only).

    Cheap when there is nothing to do: a string is searched only for the kinds whose
    signs it shows (``Policy.candidates``), and the run's state is read only for a
    value the run has not seen before.
    """

    def __init__(
        self,
        run_id: int | None,
        *,
        allocate: Allocator | None = None,
    ) -> None:
        self.run_id = run_id
        self.policy = policy()
        self._allocate = allocate or _orm_allocate
        # (kind, value) → number: in memory only, saves a locked read per repeat.
        self._known: dict[tuple[str, str], int] = {}

    def placeholder(self, kind: str, value: str) -> str:
        n = self._known.get((kind, value))
        if n is None:
            if self.run_id is None:
                n = 1 + sum(1 for k, _ in self._known if k == kind)
            else:
                n = self._allocate(self.run_id, kind, value)
            self._known[(kind, value)] = n
        return PLACEHOLDER.format(kind=kind, n=n)

    def _replacer(self, rule: Rule) -> Callable[[re.Match[str]], str]:
        kind, literals = rule.kind, self.policy.literals

        def replace(m: re.Match[str]) -> str:
            if not rule.valued:
                return self.placeholder(kind, literals.get(m[0], m[0]))
            start, end = m.span("v")
            text = m.string
            return text[m.start() : start] + self.placeholder(kind, m["v"]) + text[end : m.end()]

        return replace

    def matches(self, text: str) -> bool:
        """Whether ``text`` (plain or JSON) holds something to redact."""
        rules = self.policy.candidates(text)  # the signs show behind JSON escapes too
        if not rules:
            return False
        opened = _unescaped(text) if "\\" in text else None
        return any(
            r.pattern.search(text) is not None
            or (opened is not None and r.pattern.search(opened) is not None)
            for r in rules
        )

    def text(self, text: str) -> str:
        """``text`` with every match replaced by its placeholder."""
        for rule in self.policy.candidates(text):
            text = rule.pattern.sub(self._replacer(rule), text)
        return text

    def value(self, value: Any) -> Any:
        """Every string inside JSON-like ``value`` redacted, keys included.

        A string under a secret-looking key (``password``, ``api_key``, ``*_token``)
        is a secret whatever it looks like.
        """
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                name = self.text(key) if isinstance(key, str) else key
                if isinstance(item, str) and _SECRET_KEY.fullmatch(str(key)) and _is_secret(item):
                    out[name] = self.placeholder("password", item)
                else:
                    out[name] = self.value(item)
            return out
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def json_text(self, text: str) -> str:
        """JSON ``text`` redacted; the same object when nothing in it needed redaction."""
        if not self.matches(text):
            return text
        data = json.loads(text)
        redacted = self.value(data)
        if redacted == data:
            return text
        return json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))


def _is_secret(value: str) -> bool:
    return len(value) >= 3 and not value.startswith("[REDACTED:") and "{{" not in value


def redact_text(text: str) -> str:
    """``text`` redacted outside any run (log lines, command output)."""
    return Redactor(None).text(text)


def redaction_counts(state: Any) -> dict[str, int]:
    """How many distinct values of each kind a run's redaction ``state`` has replaced."""
    seen = state.get("seen") if isinstance(state, dict) else None
    return {kind: len(v) for kind, v in sorted((seen or {}).items()) if v}


def redaction_summary(state: Any) -> list[str]:
    """ "2 email addresses", ... for each kind redacted in a run, for the page."""
    out = []
    for kind, n in redaction_counts(state).items():
        label = KIND_LABELS.get(kind, kind.replace("_", " "))
        out.append(
            f"{n} {label}" if n == 1 else f"{n} {label}{'es' if label.endswith('s') else 's'}"
        )
    return out
