"""Lifecycle fixtures: the review-queue setup (tools, policies, held runs) shared with tests/reviews."""

from __future__ import annotations

from tests.reviews.conftest import global_policy, held, plan_doc, submit, tools

__all__ = ["global_policy", "held", "plan_doc", "submit", "tools"]
