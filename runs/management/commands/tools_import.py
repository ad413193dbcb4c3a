"""``manage.py tools_import FILE [--replace]`` or ``--mcp SERVER``: load the tool registry.

A FILE is a tools.yaml (gantz.yaml's shape included); ``--mcp`` lists the tools
of a registered MCP server and creates, updates or disables their rows.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.tools.base import ToolError
from runs.tools.mcp_discovery import tools_discover
from runs.tools.yaml_io import ToolsYamlError, tools_import


class Command(BaseCommand):
    help = (
        "Create or update tools from a tools.yaml file (writes nothing if the file has a "
        "problem), or with --mcp SERVER from the tools an MCP server lists."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="path of the tools file, or - for stdin")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="also disable every enabled tool the file does not name",
        )
        parser.add_argument(
            "--mcp",
            metavar="SERVER",
            help="discover the tools of this registered MCP server instead of reading a file",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["mcp"]:
            if options["file"]:
                raise CommandError("give a file or --mcp SERVER, not both")
            self._discover(options["mcp"])
            return
        path = options["file"]
        if not path:
            raise CommandError("give a tools file, or --mcp SERVER")
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
        self._counts(
            created=report.created,
            updated=report.updated,
            unchanged=report.unchanged,
            disabled=report.disabled,
        )
        if report.servers:
            self._counts(**{"MCP servers created or changed": report.servers})
        for name, (before, after) in report.converted.items():
            self.stdout.write(f"converted {name}: {before}  ->  {after}")

    def _discover(self, server: str) -> None:
        try:
            report = tools_discover(server=server)
        except ToolError as exc:
            raise CommandError(f"nothing imported: {exc.message}") from exc
        self._counts(
            created=report.created,
            updated=report.updated,
            unchanged=report.unchanged,
            disabled=report.disabled,
            skipped=report.skipped,
        )

    def _counts(self, **groups: list[str]) -> None:
        for label, names in groups.items():
            line = f"{label}: {len(names)}" + (f" ({', '.join(names)})" if names else "")
            self.stdout.write(line)
