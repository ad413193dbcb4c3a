"""Orchestration: what happens to a run, from submission to its last decision.

The only layer that writes through both ``runs`` and ``reviews``; interfaces
(API, pages, consumers, commands, task bodies) call it, capabilities and the
domain core never do.
"""
