"""The migration that lists, for existing shell tools, the parameters their scripts read by name."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from django.apps import apps

from runs.models import Tool
from runs.tools.kinds.shell import validate_config

pytestmark = pytest.mark.django_db

MIGRATIONS = Path(__file__).resolve().parents[3] / "runs" / "migrations"


def list_env_params() -> None:
    (path,) = MIGRATIONS.glob("*_shell_env_params.py")
    module = importlib.import_module(f"runs.migrations.{path.stem}")
    module.list_env_params(apps, None)


def test_existing_shell_tools_keep_their_lowercase_parameters_but_never_system_variables() -> None:
    names = ["db", "Target", "LD_PRELOAD", "ld_preload", "http_proxy", "bash_env", "path", "ifs"]
    schema = {"type": "object", "properties": {n: {"type": "string"} for n in names}}
    old = Tool.objects.create(
        name="old", kind=Tool.Kind.SHELL, config={"shell": 'echo "$db"'}, parameters_schema=schema
    )
    listed = Tool.objects.create(
        name="listed",
        kind=Tool.Kind.SHELL,
        config={"shell": "true", "env_params": []},
        parameters_schema=schema,
    )
    other = Tool.objects.create(
        name="py", kind=Tool.Kind.PYTHON, config={"callable": "x.y"}, parameters_schema=schema
    )
    list_env_params()
    old.refresh_from_db()
    assert old.config == {"shell": 'echo "$db"', "env_params": ["db"]}
    assert validate_config(old.config, parameters_schema=schema) == []
    listed.refresh_from_db()
    other.refresh_from_db()
    assert listed.config["env_params"] == [] and "env_params" not in other.config
