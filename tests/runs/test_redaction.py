"""The redaction policy: what is replaced, run-stable placeholders, and a state that holds no value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runs.events import RunCreated
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, TranscriptEvent
from runs.redaction import (
    Redactor,
    digest,
    policy,
    redact_text,
    redaction_counts,
    redaction_summary,
)
from runs.statemachine import NewEvent, append_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(toolset: None, key: str) -> Run:
    document = {"steps": [{"id": "a", "action": "record", "params": {"key": key, "label": "a"}}]}
    return run_submit_plan(title="t", document=document, submitted_by=None)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("key sk-live-4f8b2c9d1e7a6b5c3d2e1f0a here", "openai_key"),
        ("key sk-proj-AbCdEfGhIjKlMnOpQrStUv here", "openai_key"),
        ("key sk-ant-api03-AbCdEfGhIjKlMnOpQr here", "anthropic_key"),
        ("id AKIAIOSFODNN7EXAMPLE here", "aws_key"),
        ("tok ghp_R4nd0mT0k3nV4lu3F0rT35t1ngAbCd here", "github_token"),
        ("tok github_pat_11ABCDEFG0123456789_abcdefgh here", "github_token"),
        ("tok xoxb-1234567890-abcdefghij here", "slack_token"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc here", "bearer_token"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY----- here",
            "private_key",
        ),
        ("db password=hunter2-x here", "password"),
        ('{"api_key": "abc12345"} here', "password"),
        ("mail alice@example.com here", "email"),
        ("call +1 (555) 010-2030 here", "phone"),
        ("call 030 1234 5678 here", "phone"),
        ("call 12 345 678 here", "phone"),
        ("call 12-345-6789 here", "phone"),
    ],
)
def test_each_secret_shape_and_pii_kind_becomes_a_numbered_placeholder(
    text: str, kind: str
) -> None:
    redacted = redact_text(text)
    assert f"[REDACTED:{kind}:1]" in redacted
    assert redacted.endswith(" here")


def test_the_key_of_a_pair_and_the_word_bearer_stay_readable() -> None:
    assert redact_text("password: s3cr3t!") == "password: [REDACTED:password:1]"
    assert redact_text("Bearer abcdefghijklmnopqrstuv") == "Bearer [REDACTED:bearer_token:1]"


def test_ordinary_text_numbers_and_placeholders_are_left_alone() -> None:
    for text in (
        "deploy build 1234 to staging on 2026-12-04 at 12:30",
        "tokens_in: 1200, max_tokens: 500",
        "[REDACTED:email:1] and password=[REDACTED:password:2]",
    ):
        assert redact_text(text) == text


def test_a_string_under_a_secret_looking_key_is_a_secret_whatever_it_looks_like() -> None:
    red = Redactor(None)
    value = {
        "password": "abc",
        "github_token": "plain",
        "db": {"api-key": "zzz999"},
        "secret": "{{ steps.vault.result.pw }}",  # a reference stays a reference
        "tokens": 5,
    }
    assert red.value(value) == {
        "password": "[REDACTED:password:1]",
        "github_token": "[REDACTED:password:2]",
        "db": {"api-key": "[REDACTED:password:3]"},
        "secret": "{{ steps.vault.result.pw }}",
        "tokens": 5,
    }


def test_configured_api_key_values_are_redacted_whatever_their_shape(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", 'odd"key\\value-123')
    key_file = tmp_path / "key"
    key_file.write_text("from-a-file-0987\n")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY_FILE", str(key_file))
    red = Redactor(None)
    assert red.text('k=odd"key\\value-123;') == "k=[REDACTED:secret:1];"
    assert red.text("from-a-file-0987") == "[REDACTED:secret:2]"
    # In JSON text the key is escaped; it is found and numbered as the same value.
    text = json.dumps({"out": 'odd"key\\value-123'})
    assert json.loads(red.json_text(text)) == {"out": "[REDACTED:secret:1]"}


def test_pii_kinds_follow_the_setting_secrets_never_do(settings: Any) -> None:
    settings.PLANNERWEB_REDACT_PII = ["phone"]
    text = "alice@example.com +1 555 010 2030 AKIAIOSFODNN7EXAMPLE"
    assert redact_text(text) == "alice@example.com [REDACTED:phone:1] [REDACTED:aws_key:1]"
    settings.PLANNERWEB_REDACT_PII = []
    assert redact_text(text) == "alice@example.com +1 555 010 2030 [REDACTED:aws_key:1]"


def test_numbers_too_short_for_a_phone_number_cost_no_search_of_any_rule() -> None:
    """A result full of small numbers (counts, timings) shows no sign of any kind."""
    result = json.dumps({"ok": True, "slept_ms": 50, "rows": 1234, "ratio": 0.25, "at": "12:30"})
    assert policy().candidates(result) == []
    assert [rule.kind for rule in policy().candidates("tel 12 345 678")] == ["phone"]


def test_custom_patterns_are_a_list_or_named_kinds_with_their_own_flags(settings: Any) -> None:
    settings.PLANNERWEB_REDACT_PATTERNS = [r"(?i)\bemp-\d{4}\b"]
    assert redact_text("EMP-1234 emp-1234") == "[REDACTED:custom:1] [REDACTED:custom:2]"
    settings.PLANNERWEB_REDACT_PATTERNS = {"iban": r"\bDE\d{20}\b"}
    assert redact_text("to DE89370400440532013000") == "to [REDACTED:iban:1]"


def test_json_text_is_redacted_behind_escapes_and_returned_as_is_when_clean() -> None:
    red = Redactor(None)
    clean = json.dumps({"stdout": "all fine\n", "n": 3})
    assert red.json_text(clean) is clean
    dirty = json.dumps({"stdout": "line\nsk-live-4f8b2c9d1e7a6b5c3d2e1f0a\n+1 555 010 2030"})
    assert json.loads(red.json_text(dirty)) == {
        "stdout": "line\n[REDACTED:openai_key:1]\n[REDACTED:phone:1]"
    }


def test_placeholders_are_stable_within_a_run_and_numbered_per_kind(run: Run) -> None:
    red = Redactor(run.pk)
    assert red.text("a@x.io b@x.io a@x.io") == (
        "[REDACTED:email:1] [REDACTED:email:2] [REDACTED:email:1]"
    )
    # Another redactor of the same run (another process, say) agrees, from the stored state.
    again = Redactor(run.pk)
    assert again.text("b@x.io then c@x.io") == "[REDACTED:email:2] then [REDACTED:email:3]"
    assert again.text("+1 555 010 2030") == "[REDACTED:phone:1]"
    run.refresh_from_db()
    assert redaction_counts(run.redaction) == {"email": 3, "phone": 1}
    assert redaction_summary(run.redaction) == ["3 email addresses", "1 phone number"]


def test_the_stored_state_holds_keyed_hashes_never_values(run: Run, toolset: None) -> None:
    other = run_submit_plan(title="t", document={"steps": []}, submitted_by=None)
    secret = "sk-live-4f8b2c9d1e7a6b5c3d2e1f0a"
    Redactor(run.pk).text(secret)
    Redactor(other.pk).text(secret)
    states = [r.redaction for r in Run.objects.filter(pk__in=[run.pk, other.pk])]
    assert secret not in json.dumps(states) and "4f8b2c9d" not in json.dumps(states)
    salts = [s["salt"] for s in states]
    hashes = [next(iter(s["seen"]["openai_key"])) for s in states]
    assert salts[0] != salts[1] and hashes[0] != hashes[1]  # unlinkable across runs
    assert hashes == [digest(s, "openai_key", secret) for s in salts]


def test_text_without_a_match_costs_no_query(run: Run, django_assert_num_queries: Any) -> None:
    red = Redactor(run.pk)
    with django_assert_num_queries(0):
        assert red.value({"a": ["plain text", 1, None], "b": "more"}) == {
            "a": ["plain text", 1, None],
            "b": "more",
        }


@pytest.mark.django_db(transaction=True)
def test_transcript_events_are_stored_and_published_redacted(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Any] = []
    monkeypatch.setattr("runs.statemachine.publisher.submit", lambda _run, rows: sent.extend(rows))
    append_events(
        run.pk, [NewEvent("system", RunCreated(task="mail bob@example.org", submitted_by=None))]
    )
    event = TranscriptEvent.objects.filter(run=run).order_by("-seq").first()
    assert event is not None and event.payload["task"] == "mail [REDACTED:email:1]"
    assert "bob@example.org" not in json.dumps([(o.payload_json, o.summary) for o in sent])
    assert "[REDACTED:email:1]" in sent[-1].summary
