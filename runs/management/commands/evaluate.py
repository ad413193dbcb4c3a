"""``manage.py evaluate SUITE``: run a golden suite end to end; exit 1 when it falls short.

SUITE is a suite file or a name looked up in ``PLANNERWEB_EVAL_DIRS`` (``evals/``
first) and the demo's suites. Exit codes: 0 every task passed and every band held,
1 a task failed or a band was breached, 2 the suite or an option is unusable.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.evals.evaluate import suite_evaluate
from runs.evals.faults import FaultSpecError, parse_faults
from runs.evals.reports import table, write_json, write_junit
from runs.evals.runner import RunOptions, TaskResult
from runs.evals.suite import SuiteError, suite_load
from runs.planning.providers import LLM_PROVIDERS

# The provider SDKs log every request and retry at INFO: noise between the progress lines.
SDK_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "anthropic")


@contextmanager
def _sdk_logs(verbosity: int) -> Iterator[None]:
    """Only the SDKs' warnings reach the output, unless asked for more (``-v 2``)."""
    loggers = [logging.getLogger(name) for name in SDK_LOGGERS]
    levels = [lg.level for lg in loggers]
    if verbosity < 2:
        for lg in loggers:
            lg.setLevel(max(lg.level, logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _rate(text: str) -> float:
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if not 0 <= value <= 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = "Run a golden suite (file or name) end to end in its own database; print a table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("suite", help="a suite file, or a name found in PLANNERWEB_EVAL_DIRS")
        parser.add_argument("--provider", choices=LLM_PROVIDERS, help="plan with this provider")
        parser.add_argument("--model", default="", help="the provider's model")
        modes = parser.add_mutually_exclusive_group()
        modes.add_argument("--record", action="store_true", help="keep each model answer")
        modes.add_argument("--replay", action="store_true", help="serve recorded answers only")
        parser.add_argument("--faults", default="", help="e.g. tool:fail@2,model:429@1x3")
        parser.add_argument("--repeat", type=int, default=1, help="run each task N times")
        parser.add_argument("--fail-under", help="exit 1 under this pass rate (0.9 or 90%%)")
        parser.add_argument("--junit", type=Path, help="write a JUnit XML report here")
        parser.add_argument("--json", type=Path, help="write a JSON report here")
        parser.add_argument("--cassettes", type=Path, help="cassette folder (default: by suite)")
        parser.add_argument(
            "--in-place",
            action="store_true",
            help="use the configured database instead of a fresh one (for tests)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            loaded = suite_load(options["suite"])
            faults = tuple(parse_faults(options["faults"]))
            fail_under = _rate(options["fail_under"]) if options["fail_under"] else None
        except SuiteError as exc:
            raise CommandError("\n  ".join([str(exc), *exc.problems[1:]]), returncode=2) from exc
        except FaultSpecError as exc:
            raise CommandError(f"--faults: {exc}", returncode=2) from exc
        except ValueError as exc:
            raise CommandError(f"--fail-under: {exc} is not a rate", returncode=2) from exc
        for flag in ("json", "junit"):
            if options[flag] is not None and not options[flag].parent.is_dir():
                raise CommandError(f"--{flag}: no folder {options[flag].parent}", returncode=2)
        if not 1 <= options["repeat"] <= 100:
            raise CommandError("--repeat must be between 1 and 100", returncode=2)
        mode = "record" if options["record"] else "replay" if options["replay"] else "live"
        run_options = RunOptions(
            provider=options["provider"] or "",
            model=options["model"],
            mode=mode,
            faults=faults,
            repeat=options["repeat"],
            cassettes=options["cassettes"],
            workdir=Path(settings.VAR_DIR) / "evaluate",
        )
        with _sdk_logs(options["verbosity"]):
            done = suite_evaluate(
                loaded,
                run_options,
                fail_under=fail_under,
                isolate=not options["in_place"],
                progress=self._progress,
            )
        self.stdout.write(table(done.results, done.summary))
        if options["json"]:
            write_json(options["json"], loaded.name, done.results, done.summary)
        if options["junit"]:
            write_junit(options["junit"], loaded.name, done.results, done.summary)
        if not done.summary.ok:
            failed = sum(not r.passed for r in done.results)
            raise CommandError(
                f"suite {loaded.name}: {failed} task(s) failed; "
                + "; ".join(done.summary.breaches),
                returncode=1,
            )

    def _progress(self, done: int, total: int, result: TaskResult) -> None:
        width = 20
        filled = width * done // total
        bar = "#" * filled + "." * (width - filled)
        verdict = "pass" if result.passed else "FAIL"
        self.stderr.write(f"[{bar}] {done}/{total} {result.name}: {verdict}")
        sys.stderr.flush()
