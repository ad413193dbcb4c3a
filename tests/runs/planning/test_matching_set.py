"""The offline planner's matching on the labelled set: top-1 >= 90%, "no match" >= 90%."""

from __future__ import annotations

from typing import Any

import pytest

from runs.demo import TOOLS_FILE
from runs.planning.providers.playbook.choice import choose
from runs.planning.retrieval import Document, Index, terms
from runs.planning.retrieval.text import requested
from runs.tools.yaml_io import tools_from_yaml
from tests.runs.planning.matching_set import (
    LABELLED,
    UNRELATED,
    demo_cases,
    demo_tools,
    picked,
    score,
)


def test_the_labelled_set_is_big_enough() -> None:
    assert len(LABELLED) >= 40
    assert len(UNRELATED) >= 20
    # Model steps (llm and agent tools) need what a task cannot state (a schema, the facts, an
    # instruction with its tools): a plan's step, never a direct call.
    drafts = tools_from_yaml(TOOLS_FILE.read_text(encoding="utf-8"))
    model_steps = {f"tool:{d.name}" for d in drafts if d.kind in ("llm", "agent")}
    assert {label for _, label in LABELLED} >= {f"tool:{t.name}" for t in demo_tools()} - {
        "tool:noop",
        "tool:fail",
        "tool:run_migration",  # asked for by name, it is one step of the migration playbook
        *model_steps,
    }
    assert model_steps  # the demo has some: the exclusion above is not vacuous


def test_top1_accuracy_and_no_match_rate_at_the_configured_threshold(settings: Any) -> None:
    scores = score(settings.PLANNERWEB_PLAYBOOK_MIN_SIMILARITY)
    assert scores.top1 >= 0.9, scores.misses
    assert scores.no_match >= 0.9, scores.false_matches


def test_the_seed_migration_task_matches_the_migration_playbook(settings: Any) -> None:
    choice = choose(
        "Migrate our database to the new schema",
        demo_cases(),
        demo_tools(),
        threshold=settings.PLANNERWEB_PLAYBOOK_MIN_SIMILARITY,
    )
    assert picked(choice) == "playbook:demo-migration"


@pytest.mark.parametrize(
    "task",
    [
        "Take a backup of prod.db before the migration",
        "Before the migration, back up prod.db",
        "Back up prod.db ahead of tonight's migration",
    ],
)
def test_a_time_reference_names_when_not_what_the_task_asks(task: str, settings: Any) -> None:
    choice = choose(
        task, demo_cases(), demo_tools(), threshold=settings.PLANNERWEB_PLAYBOOK_MIN_SIMILARITY
    )
    assert picked(choice) == "tool:backup_database"
    assert choice.filled is not None and choice.filled.params == {"db": "prod.db"}


def test_only_a_time_reference_to_an_event_is_left_out_of_the_ranking() -> None:
    assert terms(requested("Take a backup of prod.db before the migration, then notify")) == [
        "backup",
        "<file>",
        "notifi",
    ]
    # A gerund is work the task includes; a task that is all time reference is kept whole.
    kept = "Roll out version 4.0 to production after testing on staging"
    assert requested(kept) == kept
    assert requested("before the migration") == "before the migration"


def test_a_tool_the_task_does_not_fully_state_is_named_with_what_it_lacks(settings: Any) -> None:
    choice = choose(
        "Deploy to staging",
        [],
        demo_tools(),
        threshold=settings.PLANNERWEB_PLAYBOOK_MIN_SIMILARITY,
    )
    assert choice.kind == "none"
    assert choice.closest == "closest: the tool deploy, but the task does not say its version"


def test_stemming_and_synonyms_fold_rewordings_onto_the_same_terms() -> None:
    assert terms("Migrating the DB") == terms("migration of the database")
    assert terms("ship 2.5.0 to prod") == terms("deploy 3.1 to production")
    assert terms("roll back staging") == ["rollback", "stage"]


def test_similarity_is_high_for_the_same_words_and_zero_for_none() -> None:
    index = Index([Document("a", "deploy a version to staging"), Document("b", "feed the cat")])
    hits = index.search("release 2.0.0 on staging")
    assert [h.document.key for h in hits] == ["a"]
    assert hits[0].similarity > 0.8
    assert index.search("water the plants") == []
    assert Index([]).search("anything") == []


@pytest.mark.parametrize(("task", "expected"), LABELLED[:2])
def test_the_seeds_own_tasks(task: str, expected: str, settings: Any) -> None:
    choice = choose(
        task, demo_cases(), demo_tools(), threshold=settings.PLANNERWEB_PLAYBOOK_MIN_SIMILARITY
    )
    assert picked(choice) == expected
