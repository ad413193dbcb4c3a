"""``manage.py tools_export [-o tools.yaml]``: write the tool registry as a tools file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.models import Tool
from runs.tools.yaml_io import tools_to_yaml


class Command(BaseCommand):
    help = "Export every tool (disabled ones too) as YAML that tools_import reads back unchanged."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-o", "--output", help="file to write (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        text = tools_to_yaml(Tool.objects.order_by("name"))
        if not options["output"]:
            self.stdout.write(text, ending="")
            return
        try:
            Path(options["output"]).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {options['output']}: {exc}") from exc
        self.stdout.write(f"wrote {Tool.objects.count()} tool(s) to {options['output']}")
