"""Options several commands take, refused by the same rules the API applies to them."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from runs.lifecycle.intake import (
    MAX_PARALLEL_MAX,
    MAX_PARALLEL_MIN,
    MaxParallelError,
    max_parallel_check,
)


def add_max_parallel(parser: CommandParser) -> None:
    parser.add_argument(
        "--max-parallel",
        type=int,
        default=None,
        help=f"steps at the same time, {MAX_PARALLEL_MIN} to {MAX_PARALLEL_MAX} "
        "(default: PLANNERWEB_DEFAULT_MAX_PARALLEL)",
    )


def max_parallel_option(value: int | None) -> None:
    """A ``CommandError`` saying the allowed range when ``--max-parallel`` is outside it."""
    try:
        max_parallel_check(value)
    except MaxParallelError as exc:
        raise CommandError(f"--max-parallel {exc.rule}, not {exc.value}") from exc
