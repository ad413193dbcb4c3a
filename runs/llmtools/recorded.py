"""The offline answer source of ``llm`` tools: the answer recorded in the tool's config.

It keeps the demo and tests working without a key or a network: the reply is
the tool's ``recorded`` value (text, or JSON for a tool with an output schema),
with token counts estimated from the text (about four characters a token), so
accounting and budgets see the same kind of figures as from a real model.
"""

from __future__ import annotations

import json
from typing import Any

from runs.planning.providers.base import ModelReply, ModelRequest, ProviderError

NAME = "recorded"
MODEL = "recorded-1"


class RecordedProvider:
    """Answers every request with one recorded answer."""

    name = NAME
    default_model = MODEL

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def complete(self, request: ModelRequest) -> ModelReply:
        answer = self.answer
        if isinstance(answer, list) and request.schema_name == "decision":
            # An agent's decisions, in order: the turn is the number of answers so far.
            turn = sum(1 for m in request.messages if m["role"] == "assistant")
            answer = answer[turn] if turn < len(answer) else None
        if answer is None:
            raise ProviderError("the tool has no recorded answer", kind="config")
        if request.schema_name == "answer" and isinstance(answer, str):
            data: Any = {"answer": answer}
        else:
            data = answer
        text = json.dumps(data, ensure_ascii=False)
        asked = len(request.system) + sum(len(m["content"]) for m in request.messages)
        return ModelReply(
            text=text,
            data=data,
            tokens_in=asked // 4 + 1,
            tokens_out=len(text) // 4 + 1,
            model=MODEL,
        )
