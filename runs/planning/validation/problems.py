"""One problem found in a plan: where (a path into the document), what kind, and a sentence."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlanProblem:
    """One thing wrong with a plan: where (``steps[2].params.db``), what kind, and what to do."""

    path: str
    code: str
    message: str
