"""The llm kind's config, prompt rendering and tools.yaml form (the model call is runs.llmtools)."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from runs.models import Tool
from runs.tools.base import ToolConfigError, ToolSpec
from runs.tools.kinds.llm import rendered_prompt, validate_config
from runs.tools.registry import invoke_tool, validate_tool_config
from runs.tools.yaml_io import ToolsYamlError, tools_from_yaml, tools_import, tools_to_yaml

SCHEMA = {"type": "object", "properties": {"log": {"type": "string"}, "n": {"type": "integer"}}}
FILE = """
tools:
  - name: write_migration
    description: Write the SQL of a migration.
    parameters:
      - {name: change, type: string, required: true}
    script:
      prompt: "Write SQL for: {change}"
      output_schema: {type: object, properties: {sql: {type: string}}, required: [sql]}
      provider: openai
      model: gpt-4.1-mini
      temperature: 0
      max_tokens: 800
    idempotent: true
"""


def test_a_good_config_has_no_problems() -> None:
    config = {"prompt": "Tables in {log}, at most {n}", "max_tokens": 100, "temperature": 0.5}
    assert validate_config(config, parameters_schema=SCHEMA) == []


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({}, "prompt is required"),
        ({"prompt": "  "}, "prompt is required"),
        ({"prompt": "x", "url": "y"}, "unknown key 'url'"),
        ({"prompt": "{missing}"}, "placeholder {missing} is not a parameter"),
        ({"prompt": "x", "output_schema": "text"}, "output_schema must be a JSON Schema object"),
        ({"prompt": "x", "output_schema": {"type": "bogus"}}, "output_schema: "),
        ({"prompt": "x", "temperature": 3}, "temperature must be a number from 0 to 2"),
        ({"prompt": "x", "temperature": True}, "temperature must be a number"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens must be a whole number"),
        ({"prompt": "x", "model": 4}, "model must be text"),
    ],
)
def test_each_config_problem_is_named(config: dict[str, object], problem: str) -> None:
    problems = validate_tool_config("llm", config, parameters_schema=SCHEMA)
    assert any(problem in p for p in problems), problems


def test_the_prompt_renders_params_as_text_and_leaves_unknown_names() -> None:
    config = {"prompt": "Log {log}; counts {n}; {other}"}
    rendered = rendered_prompt(config, {"log": "boom", "n": [1, 2]})
    assert rendered == "Log boom; counts [1,2]; {other}"


def test_the_registry_refuses_to_call_an_llm_tool_itself() -> None:
    spec = ToolSpec(name="think", kind="llm", config={"prompt": "x"})
    with pytest.raises(ToolConfigError, match="only the executor can call it"):
        asyncio.run(invoke_tool(spec, {}))


def test_a_prompt_script_imports_as_an_llm_tool_and_exports_back(db: None) -> None:
    (draft,) = tools_from_yaml(FILE)
    assert draft.kind == "llm"
    assert draft.config["prompt"] == "Write SQL for: {change}"
    assert draft.config["output_schema"]["required"] == ["sql"]
    tools_import(text=FILE, actor=None)
    tool = Tool.objects.get(name="write_migration")
    assert (tool.kind, tool.config["max_tokens"]) == ("llm", 800)
    again = tools_to_yaml(Tool.objects.all())
    assert tools_from_yaml(again) == [draft]


def test_a_bad_llm_script_is_reported_with_its_path() -> None:
    text = textwrap.dedent(
        """
        tools:
          - name: think
            script: {prompt: "x", temperature: 9, url: "http://x"}
        """
    )
    with pytest.raises(ToolsYamlError) as caught:
        tools_from_yaml(text)
    assert any("unknown key 'url'" in p for p in caught.value.problems), caught.value.problems
