"""Markers for how ``tools.yaml`` writes a value: a list or mapping on one line."""

from __future__ import annotations

from typing import Any


class Flow(list[Any]):
    """A list written inline (``[a, b]``), as people write an ``argv``."""


class FlowMap(dict[str, Any]):
    """A mapping written inline (``{name: x, type: string}``), as a parameter reads best."""
