"""Model prices: a settings override per model, else the maintained ``genai-prices`` table.

Every priced call carries the name of the price it used (``Price.source``), so a cost
shown anywhere says where it came from; budgets sum the same stored figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import genai_prices
from django.conf import settings

_MILLION = Decimal(1_000_000)
_CENT_MICROS = Decimal("0.000001")
# Our provider names genai-prices knows; any other (compatible, chain) is matched by model alone.
_PROVIDER_IDS: dict[str, str] = {"openai": "openai", "anthropic": "anthropic"}
SETTINGS_SOURCE = "settings PLANNERWEB_LLM_PRICES"


@dataclass(frozen=True)
class Price:
    """US dollars for one call, and which price gave them ('' and None: unpriced)."""

    cost: Decimal | None
    source: str


UNPRICED = Price(None, "")


def call_price(provider: str, model: str, tokens_in: int, tokens_out: int) -> Price:
    """The cost of one call: the settings override first, then ``genai-prices``."""
    override = _override(model)
    if override is not None:
        cost = (
            Decimal(str(override.get("input", 0))) * tokens_in
            + Decimal(str(override.get("output", 0))) * tokens_out
        ) / _MILLION
        return Price(cost.quantize(_CENT_MICROS), SETTINGS_SOURCE)
    return _package_price(provider, model, tokens_in, tokens_out)


def _override(model: str) -> dict[str, Any] | None:
    prices: dict[str, Any] = settings.PLANNERWEB_LLM_PRICES
    price = prices.get(model)
    if price is None:
        # Dated snapshots ("gpt-4.1-mini-2025-04-14") cost what their family costs.
        family = max((m for m in prices if model.startswith(m + "-")), key=len, default=None)
        price = prices.get(family) if family else None
    return price if isinstance(price, dict) else None


def _package_price(provider: str, model: str, tokens_in: int, tokens_out: int) -> Price:
    if not settings.PLANNERWEB_LLM_PRICES_PACKAGE or not model:
        return UNPRICED
    provider_id = _PROVIDER_IDS.get(provider)
    usage = genai_prices.Usage(input_tokens=tokens_in, output_tokens=tokens_out)
    try:
        found = genai_prices.calc_price(usage, model_ref=model, provider_id=provider_id)
    except LookupError:
        return UNPRICED
    source = f"genai-prices {genai_prices.__version__} {found.provider.id}/{found.model.id}"
    return Price(Decimal(found.total_price).quantize(_CENT_MICROS), source[:120])
