"""Which planners this deployment can use now, and what to set for those it cannot.

A model provider needs its key (or, for an OpenAI-compatible server, its base URL);
the chain needs every provider it names; the playbook planner needs nothing. The
new-run page shows a planner without what it needs as unavailable, and submission
refuses it, instead of a run that escalates later with "API key not set".
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from runs.planning.providers import LLM_PROVIDERS
from runs.planning.providers.base import ProviderError, env_secret

# What each model provider needs: a secret from the environment, or a setting.
_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
# Where each model provider's server is, when it is not the provider's own.
BASE_URL_SETTINGS = {
    "openai": "PLANNERWEB_OPENAI_BASE_URL",
    "anthropic": "PLANNERWEB_ANTHROPIC_BASE_URL",
    "compatible": "PLANNERWEB_LOCAL_BASE_URL",
}
# The options only a model provider (or the chain of them) takes (iterative mode asks a model).
MODEL_OPTIONS = ("model", "temperature", "max_tokens", "max_steps")


class PlannerUnavailable(Exception):
    """A planner this deployment cannot use now; ``missing`` says what to set."""

    def __init__(self, planner: str, missing: str) -> None:
        super().__init__(f"The {planner} planner is not available here: {missing}.")
        self.planner = planner
        self.missing = missing


@dataclass(frozen=True)
class PlannerStatus:
    name: str
    missing: str  # "" when usable; else what to set, as a sentence

    @property
    def available(self) -> bool:
        return not self.missing

    @property
    def takes_model_options(self) -> bool:
        return self.name in (*LLM_PROVIDERS, "chain")


def _provider_missing(name: str) -> str:
    if name in _KEYS:
        key = _KEYS[name]
        try:
            found = env_secret(key)
        except ProviderError as exc:
            return str(exc)
        return "" if found else f"set {key} (or {key}_FILE) in the server's environment"
    if name == "compatible":
        return (
            ""
            if str(settings.PLANNERWEB_LOCAL_BASE_URL).strip()
            else "set PLANNERWEB_LOCAL_BASE_URL to the server's OpenAI-compatible URL"
        )
    if name in LLM_PROVIDERS:
        return ""
    return f"unknown provider {name!r}"


def planner_missing(name: str) -> str:
    """What the planner ``name`` still needs, as a sentence; "" when it can plan now."""
    if name in ("playbook", "manual"):
        return ""
    if name == "chain":
        for member in settings.PLANNERWEB_PLANNER_CHAIN:
            provider = str(member.get("provider", "")) if isinstance(member, dict) else ""
            missing = _provider_missing(provider)
            if missing:
                return f"the chain's {provider or 'unnamed'} provider: {missing}"
        return ""
    return _provider_missing(name)


def planner_require(name: str) -> None:
    """Raise ``PlannerUnavailable`` (what to set) unless the planner ``name`` can plan now."""
    if missing := planner_missing(name):
        raise PlannerUnavailable(name, missing)


def planner_statuses(names: tuple[str, ...]) -> list[PlannerStatus]:
    return [PlannerStatus(name, planner_missing(name)) for name in names]
