"""Planner logic with a scripted model: repair, modes, ensembles, run planning and replanning."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import run_submit_task
from runs.models import LlmCall, Plan, Run, RunStatus, Step, StepStatus, Tool, TranscriptEvent
from runs.plan_versions import OUTCOME_FIELDS
from runs.planning.options import PlannerOptions, PlannerOptionsError
from runs.planning.planner import plan_task, plan_with_model, run_chain
from runs.planning.prompt import context_for, system_prompt, task_message
from runs.planning.providers import FACTORIES
from runs.planning.providers.base import ProviderError
from runs.planning.providers.scripted import ScriptedProvider
from runs.tools.registry import load_tool_specs
from tests.runs.planning.conftest import good_plan

pytestmark = pytest.mark.django_db


def opts(**kw: Any) -> PlannerOptions:
    return PlannerOptions(planner=kw.pop("planner", "openai"), **kw)


def scripted(monkeypatch: pytest.MonkeyPatch, name: str, *script: Any) -> ScriptedProvider:
    provider = ScriptedProvider(script)
    provider.name = name
    monkeypatch.setitem(FACTORIES, name, lambda **_: provider)
    return provider


# --- the prompt ----------------------------------------------------------------------
def test_the_prompt_lists_enabled_tools_with_schemas_limits_and_the_task(
    planner_tools: Any,
) -> None:
    context = context_for(task="Record a label", description="for the audit", max_parallel=3)
    system = system_prompt(context)
    assert "- record: Record a label (test tool)." in system
    assert '"required": ["key", "label"]' in system
    assert "secret_tool" not in system  # disabled tools are not offered
    assert "3 run at the same time" in system
    message = task_message(context)
    assert message.startswith("Task: Record a label") and "for the audit" in message


# --- repair ------------------------------------------------------------------------------
def test_a_valid_first_answer_needs_no_repair(planner_tools: Any) -> None:
    model = ScriptedProvider([good_plan()])
    outcome = plan_with_model(model, context_for(task="t"), opts(), tools=load_tool_specs())
    assert outcome.ok and outcome.confidence == 0.9
    assert [c.purpose for c in outcome.calls] == ["plan"]
    assert outcome.mode == "upfront"


def test_unknown_tools_get_a_repair_round_naming_them(planner_tools: Any) -> None:
    bad = {"steps": [{"id": "a", "action": "rm_rf", "params": {}}]}
    model = ScriptedProvider([bad, good_plan()])
    outcome = plan_with_model(model, context_for(task="t"), opts(), tools=load_tool_specs())
    assert outcome.ok
    feedback = model.requests[1].messages[-1]["content"]
    assert "rm_rf" in feedback and "steps[0].action" in feedback


def test_bad_params_and_disabled_tools_are_fed_back(planner_tools: Any) -> None:
    bad = {
        "steps": [
            {"id": "a", "action": "record", "params": {"label": 5}},
            {"id": "b", "action": "secret_tool", "params": {}},
        ]
    }
    model = ScriptedProvider([bad, good_plan()])
    outcome = plan_with_model(model, context_for(task="t"), opts(), tools=load_tool_specs())
    assert outcome.ok
    feedback = model.requests[1].messages[-1]["content"]
    assert "key" in feedback and "secret_tool" in feedback and "disabled" in feedback


def test_still_invalid_after_the_configured_rounds_gives_a_clear_reason(planner_tools: Any) -> None:
    bad = {"steps": [{"id": "a", "action": "nope"}]}
    model = ScriptedProvider(["{not json", bad, bad, bad])
    outcome = plan_with_model(
        model, context_for(task="t"), opts(repair_rounds=2), tools=load_tool_specs()
    )
    assert not outcome.ok
    assert len(model.requests) == 3
    assert "still invalid after 2 repair round(s)" in outcome.reason
    assert "nope" in outcome.reason


def test_a_refusal_ends_the_attempt_without_repair(planner_tools: Any) -> None:
    from runs.planning.providers.base import ModelReply

    model = ScriptedProvider([ModelReply(text="", refusal="no thanks")])
    outcome = plan_with_model(model, context_for(task="t"), opts(), tools=load_tool_specs())
    assert not outcome.ok and "refused to plan: no thanks" in outcome.reason
    assert len(model.requests) == 1


def test_a_provider_error_becomes_the_reason(planner_tools: Any) -> None:
    model = ScriptedProvider([ProviderError("openai rate limit", kind="rate_limited")])
    outcome = plan_with_model(model, context_for(task="t"), opts(), tools=load_tool_specs())
    assert not outcome.ok and "rate limit" in outcome.reason
    assert outcome.calls[0].error == "openai rate limit"


# --- modes ---------------------------------------------------------------------------------
def test_auto_mode_with_a_one_step_answer_runs_direct(planner_tools: Any) -> None:
    one = {"steps": [{"id": "only", "action": "record", "params": {"key": "k", "label": "x"}}]}
    outcome = plan_with_model(
        ScriptedProvider([one]), context_for(task="t", mode="auto"), opts(), tools=load_tool_specs()
    )
    assert outcome.ok and outcome.mode == "direct"


def test_direct_mode_rejects_a_multi_step_plan_and_says_so(planner_tools: Any) -> None:
    one = {"steps": [{"id": "only", "action": "record", "params": {"key": "k", "label": "x"}}]}
    model = ScriptedProvider([good_plan(), one])
    context = context_for(task="t", mode="direct")
    outcome = plan_with_model(model, context, opts(mode="direct"), tools=load_tool_specs())
    assert outcome.ok and outcome.mode == "direct"
    assert "Direct mode runs exactly one tool call" in model.requests[1].messages[-1]["content"]
    assert "return exactly one step" in model.requests[0].system


def test_options_are_checked() -> None:
    with pytest.raises(PlannerOptionsError, match="unknown planner"):
        PlannerOptions(planner="gpt-magic").check()
    with pytest.raises(PlannerOptionsError, match="unknown mode"):
        PlannerOptions(planner="openai", mode="yolo").check()


# --- ensembles -------------------------------------------------------------------------------
def test_the_chain_moves_on_when_confidence_is_low(
    planner_tools: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.PLANNERWEB_ENSEMBLE_MIN_CONFIDENCE = 0.7
    settings.PLANNERWEB_PLANNER_CHAIN = [
        {"provider": "openai", "model": "fast"},
        {"provider": "anthropic", "model": "strong"},
    ]
    fast = scripted(monkeypatch, "openai", good_plan(confidence=0.4))
    strong = scripted(monkeypatch, "anthropic", good_plan(confidence=0.95))
    outcome = plan_task(context_for(task="t"), opts(planner="chain"))
    assert outcome.ok and outcome.planner == "anthropic/strong"
    assert outcome.confidence == 0.95
    assert len(fast.requests) == 1 and len(strong.requests) == 1
    assert [c.model for c in outcome.calls] == ["fast", "strong"]


def test_the_chain_moves_on_after_two_invalid_answers(
    planner_tools: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.PLANNERWEB_PLANNER_CHAIN = [{"provider": "openai"}, {"provider": "anthropic"}]
    bad = {"steps": [{"id": "a", "action": "nope"}]}
    scripted(monkeypatch, "openai", bad, bad)
    scripted(monkeypatch, "anthropic", good_plan())
    outcome = plan_task(context_for(task="t"), opts(planner="chain", repair_rounds=1))
    assert outcome.ok and outcome.planner.startswith("anthropic/")
    assert [c.purpose for c in outcome.calls] == ["plan", "repair", "plan"]


def test_when_no_member_is_sure_enough_the_most_confident_plan_wins(planner_tools: Any) -> None:
    members = [opts(planner="a", model="m1"), opts(planner="b", model="m2")]
    a, b = (
        ScriptedProvider([good_plan(confidence=0.3)]),
        ScriptedProvider([good_plan(confidence=0.5)]),
    )
    a.name, b.name = "a", "b"
    outcome = run_chain(
        context_for(task="t"), members, tools=load_tool_specs(), providers={"a": a, "b": b}
    )
    assert outcome.ok and outcome.planner == "b/m2"
    assert "no planner reached confidence" in outcome.reason


# --- run_plan: the service --------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_planner_task_is_planned_stored_accounted_and_executed(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    key = uuid.uuid4().hex
    model = scripted(
        monkeypatch, "openai", {"steps": [{"id": "a", "action": "nope"}]}, good_plan(key)
    )
    run = run_submit_task(title="record two labels", submitted_by=operator, planner="openai")
    assert run.task.planner == "openai" and run.status == RunStatus.QUEUED
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    plan = Plan.objects.get(run=run)
    assert plan.source == Plan.Source.PLANNER and plan.is_valid
    calls = list(LlmCall.objects.filter(run=run).order_by("id"))
    assert [c.purpose for c in calls] == ["plan", "repair"]
    assert all(c.plan_id == plan.pk for c in calls)
    assert sum(c.tokens_in for c in calls) == sum(100 + len(r.system) // 4 for r in model.requests)
    kinds = list(TranscriptEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert kinds.count("planner.call") == 2
    assert (
        kinds.index("planner.call") < kinds.index("plan.created") < kinds.index("planner.decision")
    )
    decision = TranscriptEvent.objects.get(run=run, kind="planner.decision").payload
    assert decision["ok"] and decision["totals"]["calls"] == 2


@pytest.mark.django_db(transaction=True)
def test_a_plan_that_stays_invalid_escalates_the_run_and_nothing_runs(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    bad = {"steps": [{"id": "a", "action": "drop_database", "params": {}}]}
    scripted(monkeypatch, "openai", bad, bad, bad)
    run = run_submit_task(title="t", submitted_by=operator, planner="openai")
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED
    run.refresh_from_db()
    assert "still invalid after 2 repair round(s)" in run.stop_reason
    assert run.current_plan is None and not Step.objects.filter(run=run).exists()
    plan = Plan.objects.get(run=run)
    assert not plan.is_valid and plan.errors  # the operator sees what was wrong


@pytest.mark.django_db(transaction=True)
def test_a_provider_outage_escalates_with_the_providers_reason(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    scripted(
        monkeypatch, "openai", ProviderError("openai server error: HTTP 500", kind="server_error")
    )
    run = run_submit_task(title="t", submitted_by=operator, planner="openai")
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED
    run.refresh_from_db()
    assert "HTTP 500" in run.stop_reason
    assert LlmCall.objects.get(run=run).ok is False


def test_secrets_and_emails_never_reach_the_transcript(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    secret = "sk-live-0123456789abcdefghijklmnop"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    leaky = good_plan()
    leaky["goal"] = f"mail alice@example.com, call +1 (555) 010-2030, key {secret}"
    scripted(monkeypatch, "openai", leaky)
    run = run_submit_task(
        title="tell bob@example.org",
        description="the key is zz-custom-key-value-99 and sk-ant-abcdefghijklmnopqrstu",
        submitted_by=operator,
        planner="openai",
    )
    monkeypatch.setenv("PLANNERWEB_LOCAL_API_KEY", "zz-custom-key-value-99")
    from runs.lifecycle.planning import run_plan

    run_plan(run_id=run.pk)
    stored = json.dumps(
        list(
            TranscriptEvent.objects.filter(run=run, kind="planner.call").values_list(
                "payload", flat=True
            )
        )
    )
    for leaked in (
        secret,
        "alice@example.com",
        "bob@example.org",
        "555",
        "zz-custom-key",
        "sk-ant-",
    ):
        assert leaked not in stored, leaked
    assert "[REDACTED]" in stored


# --- replanning --------------------------------------------------------------------------------
@pytest.fixture
def replanning(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> Callable[..., tuple[Run, ScriptedProvider]]:
    def start(*script: Any, max_replans: int = 3) -> tuple[Run, ScriptedProvider]:
        model = scripted(monkeypatch, "openai", *script)
        run = run_submit_task(
            title="record then fail",
            submitted_by=operator,
            planner="openai",
            max_replans=max_replans,
        )
        return run, model

    return start


def failing_plan(key: str) -> dict[str, Any]:
    return {
        "goal": "record, then fail",
        "steps": [
            {"id": "a", "action": "record", "params": {"key": key, "label": "a"}},
            {
                "id": "boom",
                "action": "fail",
                "params": {"key": key, "label": "boom"},
                "depends_on": ["a"],
            },
            {
                "id": "c",
                "action": "record",
                "params": {"key": key, "label": "c"},
                "depends_on": ["boom"],
            },
        ],
        "rollback": [{"action": "record", "params": {"key": key, "label": "undo"}}],
    }


@pytest.mark.django_db(transaction=True)
def test_a_failed_step_is_replanned_keeping_finished_steps(
    replanning: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    from tests.runs import toolbox

    key = uuid.uuid4().hex
    fix = {
        "goal": "record without the broken step",
        "steps": [
            {
                "id": "c2",
                "action": "record",
                "params": {"key": key, "label": "c2"},
                "depends_on": ["a"],
            }
        ],
    }
    run, model = replanning(failing_plan(key), fix)
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["a", "boom", "c2"]  # a ran once: kept, not re-run
    v1, v2 = Plan.objects.filter(run=run).order_by("version")
    assert v2.parent_id == v1.pk and v2.source == Plan.Source.REPLANNER
    assert v2.diff == {"added": ["c2"], "removed": ["boom", "c"], "changed": [], "kept": ["a"]}
    kept = Step.objects.get(plan=v2, key="a")
    assert kept.status == StepStatus.SUCCEEDED and kept.result["label"] == "a"
    assert v2.rollback == v1.rollback  # inherited: the finished work still needs undoing
    replan_prompt = model.requests[1].messages[0]["content"]
    assert "Finished steps (kept)" in replan_prompt and '"label": "a"' in replan_prompt
    assert "boom failed on purpose" in replan_prompt
    statuses = [
        p["to_status"]
        for p in TranscriptEvent.objects.filter(run=run, kind="run.status").values_list(
            "payload", flat=True
        )
    ]
    assert statuses == ["planning", "executing", "replanning", "executing", "succeeded"]
    assert TranscriptEvent.objects.filter(run=run, kind="plan.diff").count() == 1
    assert LlmCall.objects.filter(run=run, purpose="replan").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_step_kept_by_a_replan_keeps_its_verdict_attempts_and_times(
    replanning: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    Tool.objects.filter(name="record").update(
        checks=[{"type": "regex", "pattern": "^/backups/", "path": "path"}]
    )
    key = uuid.uuid4().hex
    fix = {
        "goal": "record without the broken step",
        "steps": [
            {
                "id": "c2",
                "action": "record",
                "params": {"key": key, "label": "c2"},
                "depends_on": ["a"],
            }
        ],
    }
    run, _ = replanning(failing_plan(key), fix)
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    v1, v2 = Plan.objects.filter(run=run).order_by("version")
    original, kept = Step.objects.get(plan=v1, key="a"), Step.objects.get(plan=v2, key="a")
    assert (original.verdict, original.attempts) == ("pass", 1) and original.finished_at
    assert {f: getattr(kept, f) for f in OUTCOME_FIELDS} == {
        f: getattr(original, f) for f in OUTCOME_FIELDS
    }


@pytest.mark.django_db(transaction=True)
def test_replans_are_bounded_then_the_run_rolls_back_with_a_failure_report(
    replanning: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    from tests.runs import toolbox

    key = uuid.uuid4().hex
    again = {
        "steps": [
            {
                "id": "retry1",
                "action": "fail",
                "params": {"key": key, "label": "retry1"},
                "depends_on": ["a"],
            }
        ]
    }
    run, _ = replanning(failing_plan(key), again, max_replans=1)
    assert run_execute(run_id=run.pk) == RunStatus.ROLLED_BACK
    run.refresh_from_db()
    assert "replans exhausted (1 of 1)" in run.stop_reason
    assert "partial results from: a" in run.stop_reason
    assert toolbox.CALLS[key] == ["a", "boom", "retry1", "undo"]
    report = TranscriptEvent.objects.get(run=run, kind="run.failure_report").payload
    assert report["succeeded"][0]["id"] == "a" and report["failed"][0]["id"] == "retry1"


@pytest.mark.django_db(transaction=True)
def test_hand_written_plans_are_never_replanned(planner_tools: Any, planner_settings: Any) -> None:
    from runs.lifecycle.submit import run_submit_plan

    key = uuid.uuid4().hex
    run = run_submit_plan(title="t", document=failing_plan(key), submitted_by=None)
    assert run_execute(run_id=run.pk) == RunStatus.ROLLED_BACK
    assert Plan.objects.filter(run=run).count() == 1
    assert not LlmCall.objects.filter(run=run).exists()
