"""Suite files: discovery, strict validation (errors name file and case), defaults, templates."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aicli.errors import SuiteError, TemplateError
from aicli.suites.load import (
    discover_suite_files,
    load_suites,
    matches,
    validate_against_templates,
)
from aicli.suites.parse import load_suite_file as load_suite

GOOD = """
suite: extraction-basics
template: extraction@1.2.0
tier: economy
defaults:
  vars: {fields: [{name: company, description: Company name}], lang: en}
  assert:
    - type: is-json
  threshold: 0.5
cases:
  - name: apple
    vars: {text: "Apple Inc., based in Cupertino.", lang: fr}
    assert:
      - type: structure
        value: {company: string, location: [string, "null"]}
      - type: icontains
        value: cupertino
        weight: 2
      - type: latency
        threshold: 5000
  - name: empty
    tier: premium
    threshold: 1
    skip: flaky upstream
    vars: {text: "-"}
  - name: 42
    vars: {text: "x"}
    assert:
      - not-is-json
      - type: llm-rubric
        value: is polite
        grader: premium
        threshold: 0.7
"""


def write(text: str, name: str = "s.test.yaml", where: Path | None = None) -> Path:
    path = (where or Path.cwd()) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_loads_a_valid_suite_with_defaults() -> None:
    suite = load_suite(write(GOOD))
    assert (suite.name, suite.template, suite.tier, suite.prompt) == (
        "extraction-basics",
        "extraction@1.2.0",
        "economy",
        None,
    )
    apple, empty, num = suite.cases
    assert apple.id == "extraction-basics/apple"
    assert apple.vars == {
        "fields": [{"name": "company", "description": "Company name"}],
        "lang": "fr",  # the case overrides the default
        "text": "Apple Inc., based in Cupertino.",
    }
    assert [a.type for a in apple.asserts] == ["is-json", "structure", "icontains", "latency"]
    assert [a.index for a in apple.asserts] == [0, 1, 2, 3]
    assert apple.asserts[1].value == {"company": ["string"], "location": ["string", "null"]}
    assert apple.asserts[2].weight == 2.0 and apple.asserts[3].threshold == 5000.0
    assert apple.threshold == 0.5 and apple.tier is None and apple.line == 11
    assert (empty.tier, empty.threshold, empty.skip) == ("premium", 1.0, "flaky upstream")
    assert [a.type for a in empty.asserts] == ["is-json"]
    assert empty.asserts[0] is not apple.asserts[0]  # defaults are copied per case
    assert num.name == "42"
    assert num.asserts[1].negate and num.asserts[1].base_type == "is-json"
    assert num.asserts[2].extra == {"grader": "premium"} and num.asserts[2].threshold == 0.7


def test_inline_prompt_suite() -> None:
    suite = load_suite(
        write(
            """
            suite: greet
            prompt: "Say hello to {{ name }} in {{ lang | default('en') }}"
            system: "You are {{ persona }}."
            defaults: {vars: {persona: kind}}
            cases:
              - name: bob
                vars: {name: Bob, lang: fr}
                assert: [{type: icontains, value: bob}]
            """
        )
    )
    assert suite.prompt and suite.system == "You are {{ persona }}." and suite.template is None


def test_suite_name_defaults_to_the_file_name() -> None:
    path = write("template: t\ncases: [{name: a}]\n", name="billing.test.yaml")
    assert load_suite(path).name == "billing"


# (suite text, substrings the one error line must hold)
ERRORS: list[tuple[str, list[str]]] = [
    ("suite: x\ncases: [\n", ["s.test.yaml:", "invalid YAML"]),
    ("suite: x\nsuite: y\ntemplate: t\ncases: [{name: a}]\n", ["s.test.yaml:2", "duplicate key"]),
    ("- just\n- a list\n", ["s.test.yaml", "must be a mapping"]),
    ("suite: x\ntemplate: t\ncasess: []\n", ["unknown key 'casess'"]),
    ("suite: x\ncases: [{name: a}]\n", ["exactly one of `template`"]),
    ("suite: x\ntemplate: t\nprompt: p\ncases: [{name: a}]\n", ["exactly one of `template`"]),
    ("suite: x\ntemplate: t\nsystem: s\ncases: [{name: a}]\n", ["`system` is only allowed"]),
    ("suite: x\ntemplate: t\ncases: []\n", ["`cases` must be a non-empty list"]),
    ("suite: a/b\ntemplate: t\ncases: [{name: a}]\n", ["without '/'"]),
    ("suite: x\ntemplate: t\ncases:\n  - vars: {}\n", ["s.test.yaml:4", "case #1 needs a `name`"]),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n  - name: a\n",
        ["s.test.yaml:5", "case 'a'", "duplicate case name (first defined at line 4)"],
    ),
    ("suite: x\ntemplate: t\ncases:\n  - name: a\n    varz: {}\n", ["case 'a'", "'varz'"]),
    ("suite: x\ntemplate: t\ncases:\n  - name: a\n    vars: [1]\n", ["case 'a'", "`vars`"]),
    ("suite: x\ntemplate: t\ncases:\n  - name: a\n    threshold: 2\n", ["case 'a'", "0 to 1"]),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n    assert: [{type: icontain, value: x}]\n",
        ["case 'a'", "unknown assertion type 'icontain'"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n    assert: [{type: contains}]\n",
        ["case 'a'", "assertion 1 (contains)", "non-empty string `value`"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n"
        "    assert: [{type: contains-all, value: []}]\n",
        ["case 'a'", "non-empty list"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n    assert: [{type: regex, value: '(a'}]\n",
        ["case 'a'", "invalid regular expression"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n"
        "    assert: [{type: is-json, value: {type: nope}}]\n",
        ["case 'a'", "not a valid JSON Schema"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n    assert: [{type: json-schema}]\n",
        ["case 'a'", "needs a JSON Schema"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n"
        "    assert: [{type: structure, value: {k: text}}]\n",
        ["case 'a'", "unknown JSON type 'text'"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n    assert: [{type: latency}]\n",
        ["case 'a'", "needs `threshold`", "milliseconds"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n    assert: [{type: cost, value: 1}]\n",
        ["case 'a'", "takes `threshold`, not `value`"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n"
        "    assert: [{type: contains, value: x, threshold: 1}]\n",
        ["case 'a'", "`threshold` has no meaning"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n"
        "    assert: [{type: contains, value: x, weight: -1}]\n",
        ["case 'a'", "`weight` must be a number >= 0"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n    assert: [{type: llm-rubric}]\n",
        ["case 'a'", "needs a rubric"],
    ),
    (
        "suite: x\ntemplate: t\ncases:\n  - name: a\n"
        "    assert: [{type: contains, value: x, grader: premium}]\n",
        ["case 'a'", "only applies to llm-rubric"],
    ),
    (
        "suite: x\ntemplate: t\ndefaults:\n  assert: [{type: nope}]\ncases: [{name: a}]\n",
        ["s.test.yaml:4", "unknown assertion type 'nope'"],
    ),
    (
        "suite: x\nprompt: 'Hi {{ name }} {{ mood }}'\ncases:\n  - name: a\n    vars: {name: b}\n",
        ["s.test.yaml:4", "case 'a'", "mood"],
    ),
    ("suite: x\nprompt: 'Hi {{ name '\ncases: [{name: a}]\n", ["s.test.yaml"]),
]


@pytest.mark.parametrize(("text", "needles"), ERRORS)
def test_invalid_suites_name_file_and_case(text: str, needles: list[str]) -> None:
    path = write(text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith("s.test.yaml"), message
    for needle in needles:
        assert needle in message, message
    assert "\n" not in message


def test_unknown_type_hint_suggests_and_lists_types() -> None:
    path = write("suite: x\ntemplate: t\ncases:\n  - name: a\n    assert: [{type: icontain}]\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    hint = info.value.hint or ""
    assert "did you mean 'icontains'" in hint and "llm-rubric" in hint and "not-" in hint


def test_unreadable_file() -> None:
    path = write("")
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(SuiteError, match="cannot read the suite file"):
        load_suite(path)


# ---- discovery --------------------------------------------------------------------------------


def test_discover_folders_recursively_and_files_as_given(tmp_path: Path) -> None:
    root = tmp_path / "prompts"
    a = write("x", "a.test.yaml", root)
    b = write("x", "b.test.yml", root / "sub" / "deep")
    write("x", "c.yaml", root)  # not a suite file
    write("x", "d.test.yaml", root / ".git")  # hidden folders are skipped
    other = write("x", "other.yaml", tmp_path)
    assert discover_suite_files([], root) == [a, b]
    assert discover_suite_files([other, root, a], tmp_path / "unused") == [other, a, b]


def test_discover_errors(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"missing\.test\.yaml: no such file or folder"):
        discover_suite_files([Path("missing.test.yaml")], tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SuiteError, match="no suite files"):
        discover_suite_files([], tmp_path / "empty")


def test_load_suites_rejects_duplicate_suite_names(tmp_path: Path) -> None:
    write("suite: same\ntemplate: t\ncases: [{name: a}]\n", "a.test.yaml", tmp_path)
    write("suite: same\ntemplate: t\ncases: [{name: a}]\n", "b.test.yaml", tmp_path)
    with pytest.raises(SuiteError, match="suite name 'same' is already used by"):
        load_suites([tmp_path], tmp_path)


@pytest.mark.parametrize(
    ("pattern", "hit"),
    [
        ("apple", True),
        ("APPLE", True),
        ("basics/app", True),
        ("extraction-*/apple", True),
        ("*/pear", False),
        ("*apple", True),
        ("pear", False),
    ],
)
def test_filter_matches(pattern: str, hit: bool) -> None:
    assert matches("extraction-basics/apple", pattern) is hit


# ---- template checks --------------------------------------------------------------------------


@dataclass
class FakeTemplate:
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeStore:
    def __init__(self, templates: dict[str, FakeTemplate]) -> None:
        self.templates = templates

    def get(self, ref: str) -> FakeTemplate:
        if ref not in self.templates:
            raise TemplateError(f"template '{ref}' not found", "aicli render --list")
        return self.templates[ref]


STORE = FakeStore(
    {
        "extraction@1.2.0": FakeTemplate(
            {"text": {"type": "string"}, "fields": {"type": "array"}, "lang": {"default": "en"}}
        )
    }
)


def test_template_checks_pass_for_a_valid_suite() -> None:
    validate_against_templates([load_suite(write(GOOD))], STORE)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            "suite: x\ntemplate: nope@1\ncases: [{name: a}]\n",
            ["s.test.yaml", "template 'nope@1'", "not found"],
        ),
        (
            "suite: x\ntemplate: extraction@1.2.0\ncases:\n"
            "  - name: a\n    vars: {text: t, fields: [], colour: red}\n",
            ["s.test.yaml:4", "case 'a'", "colour", "not declared"],
        ),
        (
            "suite: x\ntemplate: extraction@1.2.0\ncases:\n  - name: a\n    vars: {text: t}\n",
            ["s.test.yaml:4", "case 'a'", "missing required variable(s) fields"],
        ),
    ],
)
def test_template_checks_name_file_and_case(text: str, needles: list[str]) -> None:
    suite = load_suite(write(text))
    with pytest.raises(SuiteError) as info:
        validate_against_templates([suite], STORE)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_inline_suites_skip_template_checks() -> None:
    suite = load_suite(write("suite: x\nprompt: hi\ncases: [{name: a}]\n"))
    validate_against_templates([suite], FakeStore({}))


def test_template_checks_with_the_real_store(tmp_path: Path) -> None:
    from aicli.templates import TemplateStore

    prompts = tmp_path / "prompts"
    write(
        """
        name: extraction
        version: 1.2.0
        template: "Extract {{ fields | length }} fields from {{ text }} in {{ lang }}"
        variables:
          text: {type: string, minLength: 1}
          fields: {type: array}
          lang: {type: string, default: en}
        """,
        "extraction.yaml",
        prompts,
    )
    store = TemplateStore(prompts)
    good = write(GOOD, "good.test.yaml", prompts)
    validate_against_templates([load_suite(good)], store)
    missing = write(
        "suite: m\ntemplate: extraction@1.2.0\ncases:\n  - name: a\n    vars: {fields: []}\n",
        "m.test.yaml",
        prompts,
    )
    with pytest.raises(SuiteError, match=r"m\.test\.yaml:4: case 'a': missing required .* text"):
        validate_against_templates([load_suite(missing)], store)
    unknown = write("suite: u\ntemplate: extraktion\ncases: [{name: a}]\n", "u.test.yaml", prompts)
    with pytest.raises(SuiteError, match=r"u\.test\.yaml: template 'extraktion': unknown template"):
        validate_against_templates([load_suite(unknown)], store)


def test_inline_prompt_with_include_loads() -> None:
    suite = load_suite(
        write(
            "suite: i\nprompt: \"{% include 'part.txt' %} {{ name }}\"\n"
            "cases: [{name: a, vars: {name: b}}]\n"
        )
    )
    assert suite.cases[0].vars == {"name": "b"}
