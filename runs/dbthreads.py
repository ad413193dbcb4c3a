"""ORM work in a helper thread, which then closes that thread's own database connections.

Django opens one connection per thread and alias; a helper thread's connections
would otherwise stay open (and, on SQLite, hold file handles) after it is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from django.db import connections

T = TypeVar("T")


def closing_connections(work: Callable[[], T]) -> Callable[[], T]:
    """``work`` wrapped to close the calling thread's connections once it returns or raises."""

    def run() -> T:
        try:
            return work()
        finally:
            connections.close_all()

    return run


async def in_db_thread(work: Callable[[], T]) -> T:
    """Run ``work`` in a helper thread (the event loop keeps running), then close its connections."""
    return await asyncio.to_thread(closing_connections(work))
