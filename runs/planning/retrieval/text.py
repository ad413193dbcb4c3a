"""Text analysis for offline matching: words, stop words, a small synonym table, Snowball stems.

Operators word the same request many ways ("ship 2.5 to prod", "release 2.5 on
production"). Stemming folds inflections (migrate / migration / migrating); the
synonym table folds the few domain words stemming cannot (ship → deploy, prod →
production, db → database). Concrete values (versions, file names, ``table.column``,
``#channels``, quoted text) become their type, so "Release 2.4.0" and "Release 3.1.0"
are the same request; ``runs.planning.providers.playbook.matching`` substitutes them.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

VALUE = re.compile(
    r"""(?P<quoted>"[^"\n]{1,200}"|'[^'\n]{1,200}')
      | (?P<version>(?<![\w.])v?\d+\.\d+(?:\.\d+)*(?:-[0-9A-Za-z.]+)?(?![\w.]))
      | (?P<file>(?<![\w/.-])[\w-]+(?:/[\w.-]+)*\.(?:db|sqlite3?|sql|json|ya?ml|csv|txt|log|tar|gz|zip)\b)
      | (?P<column>(?<![\w.])[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*(?![\w.]))
      | (?P<channel>(?<![\w#])\#[\w-]+)""",
    re.VERBOSE,
)
_WORD = re.compile(r"[a-z0-9]+|<[a-z]+>")

STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "the",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "by",
        "it",
        "its",
        "is",
        "are",
        "be",
        "been",
        "then",
        "this",
        "that",
        "these",
        "those",
        "into",
        "from",
        "at",
        "as",
        "please",
        "do",
        "does",
        "did",
        "make",
        "take",  # a light verb like "make": in "take a backup" the noun is the action
        "our",
        "my",
        "me",
        "we",
        "us",
        "all",
        "any",
        "can",
        "could",
        "would",
        "should",
        "will",
        "you",
        "your",
        "i",
        "so",
        "up",
        "out",
        "there",
        "here",
        "what",
        "which",
        "who",
        "how",
        "when",
        "where",
        "now",
        "just",
        "some",
        "new",
        "old",
        "after",
        "before",
    ]
)

# Words an operator uses for a tool's own word; each maps to the canonical word (before stemming).
SYNONYMS: dict[str, str] = {
    # deploy
    "release": "deploy",
    "ship": "deploy",
    "push": "deploy",
    "publish": "deploy",
    "prod": "production",
    "live": "production",
    "stage": "staging",
    # database, schema, migration
    "db": "database",
    "sqlite": "database",
    "structure": "schema",
    "tables": "schema",
    "table": "schema",
    "columns": "schema",
    "column": "schema",
    "upgrade": "migrate",
    "alter": "migrate",
    # backup, restore
    "snapshot": "backup",
    "dump": "backup",
    "copy": "backup",
    "save": "backup",
    "revert": "restore",
    "recover": "restore",
    "undo": "rollback",
    "downgrade": "rollback",
    # checks
    "check": "verify",
    "validate": "verify",
    "healthy": "integrity",
    "health": "integrity",
    "corruption": "integrity",
    "corrupt": "integrity",
    "consistency": "integrity",
    "sanity": "integrity",
    "inspect": "read",
    "analyze": "read",
    "analyse": "read",
    "examine": "read",
    "show": "read",
    "describe": "read",
    "list": "read",
    "look": "read",
    # tests
    "testsuite": "test",
    "specs": "test",
    "qa": "test",
    # messages
    "tell": "notify",
    "inform": "notify",
    "announce": "notify",
    "message": "notify",
    "post": "notify",
    "ping": "notify",
    "alert": "notify",
    "slack": "notify",
    "chat": "notify",
    "team": "notify",
    "channel": "notify",
    "send": "notify",
    # time
    "clock": "time",
    "hour": "time",
    "date": "time",
    "today": "time",
    "utc": "time",
    "timezone": "time",
    # waiting, echoing
    "wait": "sleep",
    "pause": "sleep",
    "delay": "sleep",
    "seconds": "sleep",
    "milliseconds": "sleep",
    "repeat": "echo",
    "parrot": "echo",
    "mirror": "echo",
}

# Two-word verbs whose parts mean something else alone ("roll back" is not "roll out").
PHRASES: dict[str, str] = {
    "back up": "backup",
    "roll back": "rollback",
    "roll out": "deploy",
    "kick off": "run",
    "go live": "deploy production",
}
_PHRASE = re.compile(r"\b(" + "|".join(re.escape(p) for p in PHRASES) + r")\b")

_STEMMER = Stemmer.Stemmer("english")

# A time reference around a noun phrase ("before the migration", "after tonight's release") says
# when the task happens, not what it asks: the migration is another event, not this task's
# work. A gerund or a verb ("after testing on staging") is work the task includes: kept.
_TIME_REFERENCE = re.compile(
    r"\b(?:before|after|during|until|ahead\s+of|prior\s+to)\s+"
    r"(?:the|a|an|this|that|these|those|our|my|your|its|their|each|every|any|\w+'s)\b"
    r".*?(?=,|;|[.!?](?:\s|$)|\n|$)",
    re.IGNORECASE,
)


def typed(text: str) -> str:
    """``text`` with each concrete value replaced by its type, like ``<version>``."""
    return VALUE.sub(lambda m: f" <{m.lastgroup}> ", text)


@lru_cache(maxsize=4096)
def _term(word: str) -> str:
    word = SYNONYMS.get(word, word)
    return word if word.startswith("<") else str(_STEMMER.stemWord(word))


def terms(text: str) -> list[str]:
    """The matching terms of ``text``: typed values, no stop words, synonyms folded, stemmed."""
    lowered = typed(text).replace("_", " ").lower()
    words = _WORD.findall(_PHRASE.sub(lambda m: PHRASES[m.group(1)], lowered))
    return [_term(w) for w in words if len(w) > 1 and w not in STOP_WORDS and not w.isdigit()]


def requested(text: str) -> str:
    """``text`` without its time references (see ``_TIME_REFERENCE``); all of it if that is all."""
    request = _TIME_REFERENCE.sub(" ", text)
    return request if terms(request) else text
