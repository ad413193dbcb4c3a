"""Model prices: the settings override first, then the genai-prices table; each names its source."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import genai_prices

from runs.planning.pricing import SETTINGS_SOURCE, UNPRICED, call_price


def test_a_known_model_is_priced_by_the_package_and_says_so(settings: Any) -> None:
    settings.PLANNERWEB_LLM_PRICES = {}
    price = call_price("openai", "gpt-4.1-mini", 1_000_000, 1_000_000)
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1_000_000, output_tokens=1_000_000),
        model_ref="gpt-4.1-mini",
        provider_id="openai",
    ).total_price
    assert price.cost == Decimal(expected).quantize(Decimal("0.000001")) > 0
    assert price.source == f"genai-prices {genai_prices.__version__} openai/gpt-4.1-mini"


def test_the_settings_override_wins_for_the_models_it_names(settings: Any) -> None:
    settings.PLANNERWEB_LLM_PRICES = {"gpt-4.1-mini": {"input": 1.0, "output": 3.0}}
    price = call_price("openai", "gpt-4.1-mini-2025-04-14", 1_000_000, 2_000_000)
    assert (price.cost, price.source) == (Decimal("7.000000"), SETTINGS_SOURCE)
    other = call_price("anthropic", "claude-sonnet-4-6", 1000, 0)
    assert other.source.startswith("genai-prices ") and other.cost is not None


def test_unknown_and_local_models_are_unpriced(settings: Any) -> None:
    settings.PLANNERWEB_LLM_PRICES = {}
    assert call_price("openai", "no-such-model-xyz", 10, 10) == UNPRICED
    assert call_price("compatible", "local-model", 10, 10) == UNPRICED
    assert call_price("compatible", "gpt-4.1-mini", 10, 10).cost is not None  # a proxy's model
    assert call_price("openai", "", 10, 10) == UNPRICED


def test_the_package_can_be_switched_off(settings: Any) -> None:
    settings.PLANNERWEB_LLM_PRICES = {}
    settings.PLANNERWEB_LLM_PRICES_PACKAGE = False
    assert call_price("openai", "gpt-4.1-mini", 10, 10) == UNPRICED
