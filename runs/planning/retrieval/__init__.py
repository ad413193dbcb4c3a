"""Offline retrieval: find the stored plan or the tool a task is about, without a model.

Used by the playbook planner (which stored plan fits a task, which single tool
answers it) and by the mapping of steps written in words to tools.
"""

from runs.planning.retrieval.index import Document, Hit, Index
from runs.planning.retrieval.text import terms

__all__ = ["Document", "Hit", "Index", "terms"]
