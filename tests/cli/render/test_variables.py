"""`aicli render` variables: --var, --vars-file and stdin, their precedence, each failure
naming the variable and rule."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.render.helpers import Prompts, fails, rendered, tpl
from tests.helpers import Isolated

TYPED = {
    "text": {"type": "string", "minLength": 1},
    "n": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
    "items": {"type": "array", "items": {"type": "string"}, "default": []},
    "flag": {"type": "boolean", "default": False},
    "style": {"enum": ["plain", "fancy"], "default": "plain"},
}
TYPED_TEMPLATE = "{{ text }}|{{ n }}|{{ items | join(',') }}|{{ flag }}|{{ style }}"


@pytest.fixture
def typed(prompts: Prompts) -> Any:
    prompts("typed.yaml", tpl(name="typed", template=TYPED_TEMPLATE, variables=TYPED))
    return prompts


def test_var_values_are_json_when_they_parse_else_text(typed: Any) -> None:
    out = rendered(
        "typed", "--var", "text=hello world", "--var", "n=7", "--var", 'items=["a","b"]',
        "--var", "flag=true",
    )  # fmt: skip
    assert out["prompt"] == "hello world|7|a,b|True|plain"


def test_string_variable_keeps_the_text_as_typed(typed: Any) -> None:
    assert rendered("typed", "--var", "text=007")["prompt"].startswith("007|")
    assert rendered("typed", "--var", "text=42")["prompt"].startswith("42|")
    assert rendered("typed", "--var", "text=[1, 2]")["prompt"].startswith("[1, 2]|")
    assert rendered("typed", "--var", "text=a=b")["prompt"].startswith("a=b|")


def test_vars_file_yaml_and_json_and_var_wins(typed: Any, isolate: Isolated) -> None:
    (isolate.work / "v.yaml").write_text("text: from yaml\nn: 4\nitems: [x]\n", encoding="utf-8")
    (isolate.work / "v.json").write_text('{"text": "from json", "flag": true}', encoding="utf-8")
    assert rendered("typed", "--vars-file", "v.yaml")["prompt"] == "from yaml|4|x|False|plain"
    assert rendered("typed", "--vars-file", "v.json")["prompt"] == "from json|3||True|plain"
    out = rendered("typed", "--vars-file", "v.yaml", "--var", "n=9")
    assert out["prompt"] == "from yaml|9|x|False|plain"


@pytest.fixture
def with_input(prompts: Prompts) -> Any:
    variables = {
        "input": {"type": "string", "minLength": 1},
        "tone": {"type": "string", "default": "calm"},
    }
    prompts("sum.yaml", tpl(name="sum", template="[{{ input }}] {{ tone }}", variables=variables))
    return prompts


def test_piped_stdin_is_input_and_loses_its_trailing_newline(with_input: Any) -> None:
    assert rendered("sum", input="piped text\n")["prompt"] == "[piped text] calm"


def test_precedence_var_over_vars_file_over_stdin(with_input: Any, isolate: Isolated) -> None:
    (isolate.work / "v.yaml").write_text("input: from file\n", encoding="utf-8")
    assert rendered("sum", "--vars-file", "v.yaml", input="stdin")["prompt"] == "[from file] calm"
    out = rendered("sum", "--vars-file", "v.yaml", "--var", "input=from var", input="stdin")
    assert out["prompt"] == "[from var] calm"


def test_no_stdin_for_input_names_the_variable(with_input: Any) -> None:
    err = fails("sum")
    assert "missing required variable 'input'" in err and "pipe text in" in err


def test_stdin_is_not_read_by_a_template_without_input(typed: Any) -> None:
    out = rendered("typed", "--var", "text=t", input="ignored")
    assert "ignored" not in out["prompt"]


def test_stdin_piped_into_a_template_without_input_in_generate_api(typed: Any) -> None:
    from aicli.errors import TemplateError
    from aicli.templates import TemplateStore, collect_variables, render

    store = TemplateStore(typed.root)
    with pytest.raises(TemplateError, match="does not take piped input"):
        render(store.get("typed"), collect_variables(["text=t"], None, "piped"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--var", "text="], "variable 'text': '' should be non-empty (minLength: 1)"),
        (["--var", "text=x", "--var", "n=0"], "variable 'n': 0 is less than the minimum of 1"),
        (["--var", "text=x", "--var", "n=11"], "'n': 11 is greater than the maximum of 10\n"),
        (["--var", "text=x", "--var", "n=two"], "variable 'n': 'two' is not of type 'integer'"),
        (["--var", "text=x", "--var", "style=loud"], "variable 'style': 'loud' is not one of"),
        (["--var", "text=x", "--var", "items=[1]"], "variable 'items[0]': 1 is not of type"),
        (["--var", "text=x", "--var", "flag=yes"], "variable 'flag'"),
        ([], "missing required variable 'text'"),
        (["--var", "text=x", "--var", "extra=1"], "unknown variable 'extra'"),
        (["--var", "no-equals"], "expected KEY=VALUE"),
        (["--var", "text=x", "--vars-file", "missing.yaml"], "missing.yaml: cannot read it"),
    ],
)
def test_each_variable_failure_is_exit_2_naming_variable_and_rule(
    typed: Any, args: list[str], expected: str
) -> None:
    err = fails("typed", *args)
    assert expected in err, err


def test_unknown_variable_lists_the_declared_ones(typed: Any) -> None:
    assert "it declares: text, n, items, flag, style" in fails("typed", "--var", "txt=x")


def test_bad_vars_files(typed: Any, isolate: Isolated) -> None:
    (isolate.work / "list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    (isolate.work / "bad.json").write_text("{nope", encoding="utf-8")
    (isolate.work / "bad.yaml").write_text("a: [1\n", encoding="utf-8")
    assert "list.yaml: expected a mapping" in fails("typed", "--vars-file", "list.yaml")
    assert "bad.json: invalid JSON" in fails("typed", "--vars-file", "bad.json")
    assert "bad.yaml" in fails("typed", "--vars-file", "bad.yaml")


def test_long_values_are_cut_short_in_errors(typed: Any) -> None:
    err = fails("typed", "--var", "text=x", "--var", "style=" + "z" * 5000)
    assert len(err) < 600 and "variable 'style'" in err


def test_invalid_schema_in_a_template_is_exit_2(prompts: Prompts) -> None:
    prompts("greet.yaml", tpl(variables={"who": {"type": "strng"}}))
    assert "variables.who is not a valid JSON Schema" in fails("greet", "--var", "who=x")


def test_strict_undefined_attribute_is_an_error_not_blank(prompts: Prompts) -> None:
    variables = {"user": {"type": "object"}}
    prompts("greet.yaml", tpl(template="Hi {{ user.nmae }}", variables=variables))
    err = fails("greet", "--var", 'user={"name": "Ann"}')
    assert "has no attribute 'nmae'" in err and "line 1" in err
