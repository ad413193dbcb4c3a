"""Language-model providers behind one interface (``base.Provider``), one folder each.

``get_provider(name)`` builds one from settings; tests swap ``FACTORIES`` entries
for a scripted model or point a real SDK at a loopback fake server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runs.planning.providers.anthropic import AnthropicProvider
from runs.planning.providers.base import Provider, ProviderError
from runs.planning.providers.compatible import CompatibleProvider
from runs.planning.providers.openai import OpenAIProvider

LLM_PROVIDERS = ("openai", "anthropic", "compatible")


def _openai(**kwargs: Any) -> Provider:

    return OpenAIProvider(**kwargs)


def _anthropic(**kwargs: Any) -> Provider:

    return AnthropicProvider(**kwargs)


def _compatible(**kwargs: Any) -> Provider:

    return CompatibleProvider(**kwargs)


FACTORIES: dict[str, Callable[..., Provider]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "compatible": _compatible,
}


def get_provider(name: str, **kwargs: Any) -> Provider:
    try:
        factory = FACTORIES[name]
    except KeyError:
        raise ProviderError(
            f"unknown provider {name!r} (known: {', '.join(FACTORIES)})", kind="config"
        ) from None
    return factory(**kwargs)
