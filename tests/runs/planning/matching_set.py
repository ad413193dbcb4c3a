"""The labelled matching set: paraphrased tasks over the demo tools and playbooks.

Each labelled task names what the offline planner should pick: ``tool:<name>``
(one direct call) or ``playbook:demo-<name>`` (a stored plan). The unrelated
tasks must match nothing. ``test_matching_set.py`` asserts the thresholds;
``bench/matching.py`` prints the figures. No database: the tools come from
``runs/demo/tools.yaml`` and the playbooks from ``runs/demo/plans/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from runs.demo import TOOLS_FILE, demo_plans
from runs.planning.prompt import ToolInfo
from runs.planning.providers.playbook.choice import Choice, choose
from runs.planning.providers.playbook.matching import Case
from runs.planning.schema import parse_plan_text
from runs.tools.yaml_io import tools_from_yaml

LABELLED: list[tuple[str, str]] = [
    # the seeds' own tasks
    ("Migrate our database to the new schema", "playbook:demo-migration"),
    ("What time is it?", "tool:current_time"),
    # current_time
    ("Tell me the current time", "tool:current_time"),
    ("What's the time in Europe/Paris right now?", "tool:current_time"),
    ("What is today's date?", "tool:current_time"),
    ("Check the clock", "tool:current_time"),
    # read_schema
    ("Show me the tables in prod.db", "tool:read_schema"),
    ("What schema version is the production database on?", "tool:read_schema"),
    ("List the columns of every table", "tool:read_schema"),
    ("Describe the database structure", "tool:read_schema"),
    # backup_database
    ("Back up prod.db", "tool:backup_database"),
    ("Take a snapshot of the database to backups/today.db", "tool:backup_database"),
    ("Make a backup copy of the production database", "tool:backup_database"),
    ("Dump the db to a backup file", "tool:backup_database"),
    ("Take a backup of prod.db before the migration", "tool:backup_database"),
    # verify_integrity
    ("Verify the integrity of prod.db", "tool:verify_integrity"),
    ("Is the database healthy? Run the integrity check", "tool:verify_integrity"),
    ("Check prod.db for corruption and foreign key errors", "tool:verify_integrity"),
    (
        "Make sure the users.email column exists and the database is consistent",
        "tool:verify_integrity",
    ),
    # run_tests
    ("Run the smoke tests", "tool:run_tests"),
    ("Run the unit test suite", "tool:run_tests"),
    ("Kick off the integration tests", "tool:run_tests"),
    ("Do the tests pass?", "tool:run_tests"),
    # notify_team
    ('Tell the team "the deploy is done"', "tool:notify_team"),
    ('Post "maintenance at 6pm" to #ops', "tool:notify_team"),
    ('Send a message to the channel: "lunch is here"', "tool:notify_team"),
    ('Announce "release frozen" in #deploys', "tool:notify_team"),
    # deploy
    ("Deploy 2.5.0 to staging", "tool:deploy"),
    ("Ship version 3.0.1 to staging", "tool:deploy"),
    ("Push 1.2.3 to production", "tool:deploy"),
    # restore_database
    ("Restore prod.db from backups/demo.db", "tool:restore_database"),
    ("Recover the database from the backup backups/pre-release.db", "tool:restore_database"),
    # rollback_deploy
    ("Roll back production to the previous version", "tool:rollback_deploy"),
    ("Undo the staging deploy", "tool:rollback_deploy"),
    # sleep, echo
    ("Wait a moment, pause for a bit", "tool:sleep"),
    ("Sleep for a while", "tool:sleep"),
    ('Echo "hello world" back', "tool:echo"),
    ('Repeat the text "ping" back to me', "tool:echo"),
    # playbooks: whole procedures
    ("Add the email column to the users table in production", "playbook:demo-migration"),
    ("Upgrade the production database schema safely with a backup", "playbook:demo-migration"),
    ("Apply the pending schema migration to the database", "playbook:demo-migration"),
    (
        "Release 3.1.0 to staging, smoke test it, then release it to production",
        "playbook:demo-deploy",
    ),
    ("Ship 2.6.0: staging first, smoke tests, then production", "playbook:demo-deploy"),
    ("Roll out version 4.0 to production after testing on staging", "playbook:demo-deploy"),
    (
        "Run the unit suite with the new test and post the test status",
        "playbook:demo-tests-fallback",
    ),
]

UNRELATED: list[str] = [
    "Order pizza for the team",
    "Water the plants",
    "Book a flight to Lisbon",
    "Write a poem about autumn",
    "Translate this paragraph into German",
    "What is the capital of Australia?",
    "Summarise the quarterly sales report",
    "Buy more coffee beans",
    "Schedule a dentist appointment",
    "Recommend a good science fiction novel",
    "Resize the company logo to 200 pixels",
    "How many calories are in an apple?",
    "Draft a cover letter for a designer job",
    "Convert 30 euros to dollars",
    "Plan a birthday party for Sam",
    "Find a recipe for lentil soup",
    "Tune the guitar",
    "Explain quantum entanglement simply",
    "Feed the cat",
    "Sort my photos by the faces in them",
]


@dataclass(frozen=True)
class Scores:
    top1: float  # labelled tasks whose pick is the label
    no_match: float  # unrelated tasks that match nothing
    misses: list[tuple[str, str, str]]  # (task, expected, picked)
    false_matches: list[tuple[str, str]]  # (task, picked)


def demo_tools() -> list[ToolInfo]:
    drafts = tools_from_yaml(TOOLS_FILE.read_text(encoding="utf-8"))
    return [ToolInfo(d.name, d.description, d.parameters_schema) for d in drafts]


def demo_cases() -> list[Case]:
    return [
        Case(f"playbook:demo-{p.name}", p.goal, parse_plan_text(p.text))
        for p in demo_plans()
        if not p.name.endswith("-broken")
    ]


def picked(choice: Choice) -> str:
    return choice.hit.document.key if choice.kind != "none" and choice.hit else "none"


def score(threshold: float) -> Scores:
    """Top-1 accuracy on ``LABELLED`` and the "no match" rate on ``UNRELATED``."""
    tools, cases = demo_tools(), demo_cases()
    misses = []
    for task, expected in LABELLED:
        got = picked(choose(task, cases, tools, threshold=threshold))
        if got != expected:
            misses.append((task, expected, got))
    false_matches = []
    for task in UNRELATED:
        got = picked(choose(task, cases, tools, threshold=threshold))
        if got != "none":
            false_matches.append((task, got))
    return Scores(
        top1=1 - len(misses) / len(LABELLED),
        no_match=1 - len(false_matches) / len(UNRELATED),
        misses=misses,
        false_matches=false_matches,
    )
