"""``manage.py tools_import tools.yaml [--replace]``: load the tool registry from a file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.tools.yaml_io import ToolsYamlError, tools_import


class Command(BaseCommand):
    help = (
        "Create or update tools from a tools.yaml file; writes nothing if the file has a problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path of the tools file, or - for stdin")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="also disable every enabled tool the file does not name",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        try:
            report = tools_import(text=text, replace=options["replace"])
        except ToolsYamlError as exc:
            raise CommandError(
                f"{path}: nothing imported, {len(exc.problems)} problem(s):\n  "
                + "\n  ".join(exc.problems)
            ) from exc
        for label, names in (
            ("created", report.created),
            ("updated", report.updated),
            ("unchanged", report.unchanged),
            ("disabled", report.disabled),
        ):
            line = f"{label}: {len(names)}" + (f" ({', '.join(names)})" if names else "")
            self.stdout.write(line)
        for name, (before, after) in report.converted.items():
            self.stdout.write(f"converted {name}: {before}  ->  {after}")
