"""Errors of the run lifecycle that interfaces turn into 4xx answers."""

from __future__ import annotations


class RunError(Exception):
    """A request that cannot be honoured in the run's current state."""
