"""A scripted fake model for planner-logic tests: it answers from a list, in order.

Each script item is a reply (JSON-able data, raw text, a ``ModelReply``) or a
``ProviderError`` to raise. Every request is kept in ``requests`` so tests can
check what the planner asked (repair feedback, replanning context).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from runs.planning.providers.base import ModelReply, ModelRequest, ProviderError, parse_json
from runs.textdata import storable_copy


class ScriptedProvider:
    name = "scripted"

    def __init__(self, script: Iterable[Any], *, model: str = "scripted-1") -> None:
        self.script = list(script)
        self.default_model = model
        self.requests: list[ModelRequest] = []

    def complete(self, request: ModelRequest) -> ModelReply:
        self.requests.append(request)
        if not self.script:
            raise ProviderError("the scripted model has no more replies", kind="bad_response")
        item = self.script.pop(0)
        if isinstance(item, ProviderError):
            raise item
        if isinstance(item, ModelReply):
            return item
        if isinstance(item, str):
            text, data = item, parse_json(item)
        else:  # data a real model could not send (NaN, huge integers) is shown escaped
            text, data = json.dumps(storable_copy(item)), item
        return ModelReply(
            text=text,
            data=data,
            tokens_in=100 + len(request.system) // 4,
            tokens_out=len(text) // 4 + 1,
            latency_ms=1,
            model=request.model or self.default_model,
        )
