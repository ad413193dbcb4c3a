"""Steps written in words mapped to tools, offline or by a configured model, for confirmation.

Nothing here submits or runs anything: the mapping is a proposal. A model's call is
recorded as an ``LlmCall`` (purpose ``words``, no run) with its tokens and cost, as
every other model call is; the call happens outside any transaction, the record in one.
A model whose server cannot be reached is one error for the whole request, not a
failed line per step, and nothing is recorded: no model answered, so nothing was spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from django.conf import settings
from django.db import transaction

from runs.planning.accounting import record_calls
from runs.planning.attempts import CallRecord
from runs.planning.availability import BASE_URL_SETTINGS, PlannerUnavailable, planner_missing
from runs.planning.options import PlannerOptionsError, default_options
from runs.planning.prompt import load_tools
from runs.planning.providers import LLM_PROVIDERS, get_provider
from runs.planning.providers.base import ProviderError
from runs.planning.words import WordsMapping, map_steps
from runs.planning.words_model import map_steps_with_model

OFFLINE = "offline"
WORDS_PLANNERS = (OFFLINE, *LLM_PROVIDERS)


class WordsPlannerUnavailable(PlannerUnavailable):
    """The chosen model cannot be asked on this deployment; ``missing`` says what to set."""


class WordsPlannerUnreachable(Exception):
    """The chosen model is configured, but its server did not take the connection."""

    def __init__(self, planner: str, address: str) -> None:
        where = f" at {address}" if address else ""
        setting = BASE_URL_SETTINGS.get(planner, "")
        hint = f" (or set {setting} to where it listens)" if setting else ""
        super().__init__(
            f"The {planner} planner cannot be reached{where}; nothing was mapped. "
            f"Start its server{hint}, then try again."
        )
        self.planner = planner
        self.address = address


def words_map(
    *, lines: Sequence[str], goal: str = "", planner: str = OFFLINE, model: str = ""
) -> WordsMapping:
    """The lines mapped by ``planner``: offline by description, or by a model (one call).

    Raises ``PlannerOptionsError`` for a planner that does not map words,
    ``WordsPlannerUnavailable`` for a model whose key (or URL) is not set, and
    ``WordsPlannerUnreachable`` when the model's server refuses the connection.
    """
    if planner == OFFLINE:
        threshold = settings.PLANNERWEB_PLAYBOOK_MIN_SIMILARITY
        return map_steps(lines, load_tools(), threshold=threshold, goal=goal)
    if planner not in LLM_PROVIDERS:
        raise PlannerOptionsError(
            f"unknown planner {planner!r}; choose one of {', '.join(WORDS_PLANNERS)}",
            field="planner",
        )
    if missing := planner_missing(planner):
        raise WordsPlannerUnavailable(planner, missing)
    options = default_options(planner=planner, model=model)
    if budget := settings.PLANNERWEB_BUDGET_MAX_TOKENS:  # a run's token budget bounds this call too
        options = replace(options, max_tokens=min(options.max_tokens, budget))
    try:
        provider = get_provider(planner)
    except ProviderError as exc:
        raise WordsPlannerUnavailable(planner, exc.message) from None
    mapping, calls = map_steps_with_model(lines, load_tools(), provider, options, goal=goal)
    if mapping.failure == "connection":
        raise WordsPlannerUnreachable(planner, str(getattr(provider, "base_url", "") or ""))
    words_calls_record(calls)
    return mapping


@transaction.atomic
def words_calls_record(calls: list[CallRecord]) -> None:
    """Store the mapping's model calls (tokens, cost) where the model spend is summed."""
    record_calls(run_id=None, calls=calls)  # no run, so no transcript event to append
