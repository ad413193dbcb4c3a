"""The runs app's API router: tasks, runs, tools and API tokens, composed for ``plannerweb/api.py``."""

from __future__ import annotations

from ninja import Router

from runs.api.playbooks import playbooks_router
from runs.api.runs import runs_router
from runs.api.tasks import tasks_router
from runs.api.tokens import tokens_router
from runs.api.tools import tools_router
from runs.api.words import words_router
from runs.api.workflows import workflows_router

router = Router()
router.add_router("/tasks", tasks_router)
router.add_router("/runs", runs_router)
router.add_router("/tokens", tokens_router)
router.add_router("/playbooks", playbooks_router)
router.add_router("/plans", words_router)
router.add_router("/workflows", workflows_router)
router.add_router("", tools_router)
