"""Server-rendered pages: runs list, new run, run detail (live), transcript, cancel, tools, login.

Views parse input, check the role, call a service or selector, render; one module per page.
"""

from runs.views.detail import (
    event_summary,
    run_cancel,
    run_detail,
    run_live,
    run_retry,
    run_tree,
)
from runs.views.listing import run_list
from runs.views.new import run_new, run_new_check, run_new_task, run_new_words
from runs.views.pages import LoginView, tool_list
from runs.views.transcript import run_transcript

__all__ = [
    "LoginView",
    "event_summary",
    "run_cancel",
    "run_detail",
    "run_list",
    "run_live",
    "run_tree",
    "run_new",
    "run_new_check",
    "run_new_task",
    "run_new_words",
    "run_retry",
    "run_transcript",
    "tool_list",
]
