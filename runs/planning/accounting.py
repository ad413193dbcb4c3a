"""Accounting of model calls: cost and its price, stored rows and events, per-run totals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum

from runs.events import PlannerCall
from runs.models import LlmCall, TranscriptEvent
from runs.planning.pricing import call_price
from runs.redaction import Redactor
from runs.statemachine import NewEvent
from runs.textdata import storable_copy, storable_text


def call_cost(model: str, tokens_in: int, tokens_out: int, provider: str = "") -> Decimal | None:
    """US dollars for one call (``runs.planning.pricing``); None for an unpriced model."""
    return call_price(provider, model, tokens_in, tokens_out).cost


def record_calls(
    *,
    run_id: int | None,
    calls: list[Any],
    plan: Any = None,
    role: str = TranscriptEvent.Role.PLANNER,
) -> list[NewEvent]:
    """Store each call as an ``LlmCall`` (redacted) and return its transcript events.

    Call inside the transaction that stores the plan, so accounting and plan agree.
    ``run_id`` is None for a call made for no run (steps in words mapped by a model).
    What the model sent is stored escaped where the database could not hold it
    (``runs.textdata.storable_copy``), so recording a call never fails.
    """

    events = []
    red = Redactor(run_id)
    for original in calls:
        if getattr(original, "stored_id", None) is not None:
            continue  # stored when it returned (runs.planning.attempts.CALL_SINK)
        call = _storable_call(original)
        price = call_price(call.provider, call.model, call.tokens_in, call.tokens_out)
        cost = price.cost
        error = red.text(call.error or (f"refused: {call.refusal}" if call.refusal else ""))
        row = LlmCall.objects.create(
            run_id=run_id,
            plan=plan,
            provider=call.provider,
            model=red.text(call.model),
            purpose=call.purpose,
            tokens_in=call.tokens_in,
            tokens_out=call.tokens_out,
            latency_ms=call.latency_ms,
            cost=cost,
            price_source=price.source,
            ok=call.ok,
            error=error,
        )
        events.append(
            NewEvent(
                role,
                PlannerCall(
                    call_id=row.pk,
                    provider=call.provider,
                    model=call.model,
                    purpose=call.purpose,
                    attempt=call.attempt,
                    prompt=red.value(call.prompt),
                    response=red.text(call.response),
                    tokens_in=call.tokens_in,
                    tokens_out=call.tokens_out,
                    latency_ms=call.latency_ms,
                    cost=float(cost) if cost is not None else None,
                    price=price.source,
                    ok=call.ok,
                    refusal=red.text(call.refusal),
                    error=error,
                    step=getattr(call, "step", ""),
                ),
            )
        )
    return events


def _storable_call(call: Any) -> Any:
    """A copy of ``call`` whose texts the database can store (a model's answer may hold NUL)."""
    texts = ("provider", "model", "purpose", "response", "refusal", "error")
    fields = {name: storable_text(getattr(call, name)) for name in texts}
    return replace(call, prompt=storable_copy(call.prompt), **fields)


@dataclass(frozen=True)
class LlmTotals:
    calls: int
    failed: int
    tokens_in: int
    tokens_out: int
    latency_ms: int
    cost: Decimal | None  # None when no call had a price
    unpriced: int
    prices: tuple[str, ...] = ()  # which prices the cost used (runs.planning.pricing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "failed": self.failed,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "latency_ms": self.latency_ms,
            "cost": float(self.cost) if self.cost is not None else None,
            "unpriced": self.unpriced,
            "prices": list(self.prices),
        }


def run_llm_totals(run_id: int) -> LlmTotals:
    """Selector: every model call of a run, summed."""

    agg = LlmCall.objects.filter(run_id=run_id).aggregate(
        n_calls=Count("id"),
        n_failed=Count("id", filter=Q(ok=False)),
        sum_in=Sum("tokens_in"),
        sum_out=Sum("tokens_out"),
        sum_latency=Sum("latency_ms"),
        sum_cost=Sum("cost"),
        n_unpriced=Count("id", filter=Q(cost__isnull=True)),
    )
    prices = (
        LlmCall.objects.filter(run_id=run_id)
        .exclude(price_source="")
        .values_list("price_source", flat=True)
        .distinct()
    )
    return LlmTotals(
        calls=agg["n_calls"],
        failed=agg["n_failed"],
        tokens_in=agg["sum_in"] or 0,
        tokens_out=agg["sum_out"] or 0,
        latency_ms=agg["sum_latency"] or 0,
        cost=agg["sum_cost"],
        unpriced=agg["n_unpriced"],
        prices=tuple(sorted(prices)) if agg["n_calls"] else (),
    )


def llm_totals_of(calls: Iterable[Any]) -> LlmTotals:
    """``run_llm_totals`` of model calls already loaded (a page that lists them needs no sum query)."""
    calls = list(calls)
    costs = [c.cost for c in calls if c.cost is not None]
    return LlmTotals(
        calls=len(calls),
        failed=sum(1 for c in calls if not c.ok),
        tokens_in=sum(c.tokens_in for c in calls),
        tokens_out=sum(c.tokens_out for c in calls),
        latency_ms=sum(c.latency_ms for c in calls),
        cost=sum(costs, Decimal(0)) if costs else None,
        unpriced=len(calls) - len(costs),
        prices=tuple(sorted({c.price_source for c in calls if c.price_source})),
    )
