"""Lease tokens: who holds a run, fenced so a worker that lost it cannot write."""

from __future__ import annotations

import os
import secrets
import socket


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_token(worker_id: str) -> str:
    """A fresh lease token: the worker's name (for people) and a nonce (for the fence)."""
    return f"{worker_id}/{secrets.token_hex(4)}"[-100:]
