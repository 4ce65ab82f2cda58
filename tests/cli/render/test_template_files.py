"""`aicli render` on malformed template files: exit 2 naming the file (and line), hints."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.render.helpers import Prompts, fails, tpl


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (tpl(colour="red"), "unknown key 'colour'"),
        ("name: greet\nversion: 1.0.0\ntemplate: 'Hi {{ who }'\nvariables: {who: {}}\n", "line"),
        ("name: greet\nversion: 1.0\ntemplate: hi\n", "'version' must be text"),
        (tpl(version="1.0"), "not semver"),
        (tpl(version="1.0.0+build"), "not semver"),
        (tpl(name="Bad Name"), "not a slug"),
        ("name: greet\nversion: 1.0.0\ntemplate: '  '\n", "'template' is empty"),
        (tpl(variables={"who": "string"}), "must be a JSON Schema mapping"),
        (tpl(variables={"loop": {}}, template="x"), "reserved"),
        ("name: greet\nversion: 1.0.0\ntemplate: [unclosed\n", "invalid YAML"),
        (tpl(template="{% for x in y %}"), "line 1"),
        (tpl(template="{{ who }} {{ what }}"), "uses undeclared variable 'what'"),
        (tpl(system="You are {{ role }}."), "uses undeclared variable 'role'"),
    ],
)
def test_malformed_template_files_are_exit_2_naming_the_file(
    prompts: Prompts, text: str, expected: str
) -> None:
    prompts("greet.yaml", text)
    err = fails("greet", "--var", "who=x")
    assert expected in err, err
    assert str(Path("prompts/greet.yaml")) in err


def test_malformed_yaml_names_file_and_line(prompts: Prompts) -> None:
    prompts("greet.yaml", "name: greet\nversion: 1.0.0\ntemplate: hi\nvariables:\n  a: [1, 2\n")
    err = fails("greet")
    assert f"{Path('prompts/greet.yaml')}:" in err and "invalid YAML" in err


def test_a_misnamed_suite_gets_a_hint(prompts: Prompts) -> None:
    prompts("suite.yaml", "suite: s\ntemplate: greet@1.0.0\ncases: []\n")
    assert "*.test.yaml" in fails("--list")
