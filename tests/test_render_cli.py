"""`aicli render` end to end: versions, variables, the sandbox, checksums, the lock, the output."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO_ROOT, Isolated, cli, run_aicli


def tpl(
    name: str = "greet",
    version: str = "1.0.0",
    template: str = "Hello {{ who }}!",
    variables: dict[str, Any] | None = None,
    **extra: Any,
) -> str:
    data: dict[str, Any] = {"name": name, "version": version, "template": template, **extra}
    data["variables"] = {"who": {"type": "string"}} if variables is None else variables
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture
def prompts(isolate: Isolated) -> Any:
    """write(relpath, text) under work/prompts, with work/aicli.yaml pointing prompts_dir at it."""
    root = isolate.work / "prompts"
    root.mkdir()
    (isolate.work / "aicli.yaml").write_text("prompts_dir: prompts\n", encoding="utf-8")

    def write(rel: str, text: str) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    write.root = root  # type: ignore[attr-defined]
    return write


def rendered(*args: str, input: str | None = None) -> dict[str, Any]:
    res = cli("render", *args, "--json", input=input)
    assert res.exit_code == 0, res
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def fails(*args: str, input: str | None = None) -> str:
    """Run `aicli render ARGS`, expect exit 2 with nothing on stdout; return stderr."""
    res = cli("render", *args, input=input)
    assert res.exit_code == 2, res
    assert res.stdout == "", res
    assert res.stderr.startswith("aicli: error: "), res
    assert "Traceback" not in res.stderr
    return res.stderr


# ---- versions -------------------------------------------------------------------------------


def test_name_alone_is_the_highest_semver_release(prompts: Any) -> None:
    for version in ("1.2.0", "1.9.0", "1.10.0", "1.10.0-rc.1", "2.0.0-beta"):
        prompts(f"greet/{version}.yaml", tpl(version=version, template=f"v{version} {{{{ who }}}}"))
    out = rendered("greet", "--var", "who=x")
    assert (out["version"], out["prompt"]) == ("1.10.0", "v1.10.0 x")
    listed = json.loads(cli("render", "--list", "--json").stdout)
    assert [t["version"] for t in listed] == [
        "1.2.0",
        "1.9.0",
        "1.10.0-rc.1",
        "1.10.0",
        "2.0.0-beta",
    ]


def test_only_prereleases_then_the_highest_prerelease(prompts: Any) -> None:
    prompts("a.yaml", tpl(version="2.0.0-rc.2"))
    prompts("b.yaml", tpl(version="2.0.0-rc.10"))
    assert rendered("greet", "--var", "who=x")["version"] == "2.0.0-rc.10"


def test_pinned_version_renders_exactly_that_one(prompts: Any) -> None:
    prompts("greet/1.9.0.yaml", tpl(version="1.9.0", template="old {{ who }}"))
    prompts("greet/1.10.0.yaml", tpl(version="1.10.0", template="new {{ who }}"))
    out = rendered("greet@1.9.0", "--var", "who=Ann")
    assert out["name"] == "greet" and out["version"] == "1.9.0" and out["prompt"] == "old Ann"


def test_unknown_name_lists_close_matches(prompts: Any) -> None:
    prompts("s.yaml", tpl(name="summarize"))
    prompts("c.yaml", tpl(name="classify"))
    err = fails("summarise")
    assert "unknown template 'summarise'" in err and "did you mean summarize?" in err
    err = fails("zzz")
    assert "available: classify, summarize" in err


def test_unknown_version_lists_available(prompts: Any) -> None:
    prompts("a.yaml", tpl(version="1.0.0"))
    prompts("b.yaml", tpl(version="1.1.0"))
    err = fails("greet@9.9.9")
    assert "has no version 9.9.9" in err and "available: 1.0.0, 1.1.0" in err
    assert "not semver" in fails("greet@1.2")


def test_duplicate_name_version_names_both_files(prompts: Any) -> None:
    prompts("one/greet.yaml", tpl())
    prompts("two/greet.yml", tpl(template="other {{ who }}"))
    err = fails("greet")
    assert "greet@1.0.0 is defined twice" in err
    assert str(Path("one/greet.yaml")) in err and str(Path("two/greet.yml")) in err


def test_missing_prompts_dir_says_where_it_looked(isolate: Isolated) -> None:
    (isolate.work / "aicli.yaml").write_text("prompts_dir: nowhere\n", encoding="utf-8")
    err = fails("greet")
    assert "nowhere" in err and "does not exist" in err


def test_suites_and_other_yaml_are_not_templates(prompts: Any) -> None:
    prompts("greet.yaml", tpl())
    prompts("greet.test.yaml", "suite: s\ntemplate: greet@1.0.0\ncases: []\n")
    prompts("notes.yaml", "just: data\n")
    prompts(".hidden/x.yaml", "template: {{ broken\n")
    listed = json.loads(cli("render", "--list", "--json").stdout)
    assert [t["name"] for t in listed] == ["greet"]


# ---- template files --------------------------------------------------------------------------


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
    prompts: Any, text: str, expected: str
) -> None:
    prompts("greet.yaml", text)
    err = fails("greet", "--var", "who=x")
    assert expected in err, err
    assert str(Path("prompts/greet.yaml")) in err


def test_malformed_yaml_names_file_and_line(prompts: Any) -> None:
    prompts("greet.yaml", "name: greet\nversion: 1.0.0\ntemplate: hi\nvariables:\n  a: [1, 2\n")
    err = fails("greet")
    assert f"{Path('prompts/greet.yaml')}:" in err and "invalid YAML" in err


def test_a_misnamed_suite_gets_a_hint(prompts: Any) -> None:
    prompts("suite.yaml", "suite: s\ntemplate: greet@1.0.0\ncases: []\n")
    assert "*.test.yaml" in fails("--list")


# ---- variables -------------------------------------------------------------------------------

TYPED = {
    "text": {"type": "string", "minLength": 1},
    "n": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
    "items": {"type": "array", "items": {"type": "string"}, "default": []},
    "flag": {"type": "boolean", "default": False},
    "style": {"enum": ["plain", "fancy"], "default": "plain"},
}
TYPED_TEMPLATE = "{{ text }}|{{ n }}|{{ items | join(',') }}|{{ flag }}|{{ style }}"


@pytest.fixture
def typed(prompts: Any) -> Any:
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
def with_input(prompts: Any) -> Any:
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


def test_invalid_schema_in_a_template_is_exit_2(prompts: Any) -> None:
    prompts("greet.yaml", tpl(variables={"who": {"type": "strng"}}))
    assert "variables.who is not a valid JSON Schema" in fails("greet", "--var", "who=x")


def test_strict_undefined_attribute_is_an_error_not_blank(prompts: Any) -> None:
    variables = {"user": {"type": "object"}}
    prompts("greet.yaml", tpl(template="Hi {{ user.nmae }}", variables=variables))
    err = fails("greet", "--var", 'user={"name": "Ann"}')
    assert "has no attribute 'nmae'" in err and "line 1" in err


# ---- the sandbox -----------------------------------------------------------------------------

PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ ().__class__.__base__ }}",
    "{{ self }}",
    "{{ range }}",
    "{{ 'a'|attr('__class__') }}",
    "{{ '{0.__class__.__init__.__globals__}'.format('') }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{% set x = [].__class__ %}{{ x }}",
    "{{ 'x' * 10**9 }}",
    "{{ 'x'|center(10**9) }}",
    "{{ '%0999999999d'|format(1) }}",
]
FORBIDDEN_OUTPUT = ("<class", "<function", "object at", "Traceback", "uid=", "builtins", "0x")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sandbox_payloads_fail_and_print_nothing_from_python(prompts: Any, payload: str) -> None:
    prompts("evil.yaml", tpl(name="evil", template=payload, variables={}))
    res = cli("render", "evil")
    assert res.exit_code == 2, res
    assert res.stdout == ""
    for bad in FORBIDDEN_OUTPUT:
        assert bad not in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) <= 2


def test_sandbox_payload_in_a_subprocess(prompts: Any) -> None:
    prompts("evil.yaml", tpl(name="evil", template=PAYLOADS[0], variables={}))
    res = run_aicli("render", "evil")
    assert res.exit_code == 2 and res.stdout == ""
    assert "blocked by the sandbox" in res.stderr and "<class" not in res.stderr


def test_loop_bomb_is_stopped(prompts: Any) -> None:
    bomb = "{% for x in range(100000) %}{% for y in range(100000) %}x{% endfor %}{% endfor %}"
    prompts("bomb.yaml", tpl(name="bomb", template=bomb, variables={}))
    start = time.monotonic()
    err = fails("bomb")
    assert time.monotonic() - start < 10
    assert "exceeds" in err or "longer than" in err


def test_silent_loop_bomb_hits_the_time_limit(prompts: Any) -> None:
    bomb = (
        "{% set l = range(100000)|list %}"
        "{% for x in l %}{% for y in l %}{% for z in l %}{% endfor %}{% endfor %}{% endfor %}"
    )
    prompts("bomb.yaml", tpl(name="bomb", template=bomb, variables={}))
    start = time.monotonic()
    assert "rendering took longer than 2 s" in fails("bomb")
    assert time.monotonic() - start < 10


def test_string_doubling_is_stopped_before_it_eats_memory(prompts: Any) -> None:
    bomb = (
        "{% set ns = namespace(s='xx') %}"
        "{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
    )
    prompts("bomb.yaml", tpl(name="bomb", template=bomb, variables={}))
    assert "limit" in fails("bomb")


@pytest.fixture
def outside(isolate: Isolated) -> Path:
    secret = isolate.work / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE", encoding="utf-8")
    return secret


@pytest.mark.parametrize(
    "include",
    ["../secret.txt", "/etc/passwd", "sub/../../secret.txt", "link.txt", "linkdir/secret.txt"],
)
def test_includes_cannot_leave_the_prompts_folder(
    prompts: Any, outside: Path, include: str
) -> None:
    root = prompts.root
    os.symlink(outside, root / "link.txt")
    os.symlink(outside.parent, root / "linkdir")
    (root / "sub").mkdir()
    prompts("evil.yaml", tpl(name="evil", template=f"{{% include '{include}' %}}", variables={}))
    res = cli("render", "evil")
    assert res.exit_code == 2 and res.stdout == ""
    assert "TOP-SECRET" not in res.stderr and "root:" not in res.stderr
    assert "include" in res.stderr


def test_computed_include_names_are_refused(prompts: Any) -> None:
    prompts("evil.yaml", tpl(name="evil", template="{% include who %}"))
    assert "needs a quoted file name" in fails("evil", "--var", "who=x.txt")


def test_includes_inside_the_folder_work_and_count_in_the_checksum(prompts: Any) -> None:
    prompts("parts/rules.txt", "Be brief, {{ who }}.")
    prompts("parts/macros.j2", "{% macro shout(s) %}{{ s | upper }}{% endmacro %}")
    text = "{% import 'parts/macros.j2' as m %}{{ m.shout('hi') }} {% include 'parts/rules.txt' %}"
    prompts("greet.yaml", tpl(template=text))
    first = rendered("greet", "--var", "who=Ann")
    assert first["prompt"] == "HI Be brief, Ann."
    prompts("parts/rules.txt", "Be thorough, {{ who }}.")
    second = rendered("greet", "--var", "who=Ann")
    assert second["prompt"] == "HI Be thorough, Ann."
    assert second["checksum"] != first["checksum"]


def test_template_file_symlinked_from_outside_is_refused(prompts: Any, isolate: Isolated) -> None:
    real = isolate.work / "elsewhere.yaml"
    real.write_text(tpl(), encoding="utf-8")
    os.symlink(real, prompts.root / "greet.yaml")
    assert "points outside the prompts folder" in fails("greet", "--var", "who=x")


# ---- checksum and lock -----------------------------------------------------------------------


def test_checksum_ignores_key_order_and_yaml_style(prompts: Any) -> None:
    prompts("a.yaml", tpl(version="1.0.0", variables={"who": {"type": "string", "minLength": 1}}))
    b = (
        "variables:\n  who: {minLength: 1, type: string}\n"
        "template: 'Hello {{ who }}!'\nversion: '1.0.1'\nname: greet\n"
        "description: whatever\ntier: economy\n"
    )
    prompts("b.yaml", b)
    one = rendered("greet@1.0.0", "--var", "who=x")
    two = rendered("greet@1.0.1", "--var", "who=x")
    assert one["checksum"] == two["checksum"] and len(one["checksum"]) == 12
    assert int(one["checksum"], 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"template": "Hello {{ who }}!!"},
        {"system": "Be kind."},
        {"variables": {"who": {"type": "string", "default": "you"}}},
        {"variables": {"who": {"type": "string", "minLength": 2}}},
    ],
)
def test_any_content_change_changes_the_checksum(prompts: Any, change: dict[str, Any]) -> None:
    prompts("a.yaml", tpl())
    before = rendered("greet", "--var", "who=xy")["checksum"]
    prompts("a.yaml", tpl(**change))
    assert rendered("greet", "--var", "who=xy")["checksum"] != before


def test_lock_records_then_a_changed_version_must_be_bumped(prompts: Any) -> None:
    path = prompts("greet/1.0.0.yaml", tpl())
    assert not (prompts.root / "prompts.lock").exists()
    assert rendered("greet", "--var", "who=x")["version"] == "1.0.0"  # no lock: fine

    res = cli("render", "--lock")
    assert res.exit_code == 0 and res.stdout == ""
    assert "added greet@1.0.0" in res.stderr
    lock = yaml.safe_load((prompts.root / "prompts.lock").read_text(encoding="utf-8"))
    checksum = rendered("greet", "--var", "who=x")["checksum"]
    assert lock == {"greet@1.0.0": checksum}
    assert "up to date" in cli("render", "--lock").stderr

    path.write_text(tpl(template="Hi {{ who }}"), encoding="utf-8")
    err = fails("greet", "--var", "who=x")
    assert "greet@1.0.0" in err and "changed since it was locked" in err
    assert f"{checksum} ->" in err and "bump the version" in err
    assert "bump the version" in fails("--lock")
    listing = cli("render", "--list")
    assert listing.exit_code == 2 and "changed" in listing.stdout

    path.write_text(tpl(), encoding="utf-8")  # restore the released text
    prompts("greet/1.1.0.yaml", tpl(version="1.1.0", template="Hi {{ who }}"))
    assert rendered("greet", "--var", "who=x")["prompt"] == "Hi x"  # unlocked new version: fine
    res = cli("render", "--lock")
    assert "added greet@1.1.0" in res.stderr and "greet@1.0.0" not in res.stderr
    text = (prompts.root / "prompts.lock").read_text(encoding="utf-8")
    assert text.index("greet@1.0.0") < text.index("greet@1.1.0")


def test_lock_sorts_by_name_then_semver(prompts: Any) -> None:
    for name, version in [("b", "1.10.0"), ("a", "2.0.0"), ("b", "1.9.0"), ("a", "1.0.0")]:
        prompts(f"{name}-{version}.yaml", tpl(name=name, version=version))
    assert cli("render", "--lock").exit_code == 0
    lines = [
        line.split(":")[0]
        for line in (prompts.root / "prompts.lock").read_text(encoding="utf-8").splitlines()
        if not line.startswith("#")
    ]
    assert lines == ["a@1.0.0", "a@2.0.0", "b@1.9.0", "b@1.10.0"]


def test_corrupt_lock_file_is_exit_2(prompts: Any) -> None:
    prompts("greet.yaml", tpl())
    prompts("prompts.lock", "- not a mapping\n")
    assert "prompts.lock" in fails("greet", "--var", "who=x")


# ---- one broken file breaks only its own name ------------------------------------------------

# (file text or bytes, expected error, whether the error belongs to the name `bad`)
BROKEN: dict[str, tuple[str | bytes, str, bool]] = {
    "undeclared": (tpl(name="bad", template="{{ y }}", variables={}), "variable 'y'", True),
    "unknown-key": (tpl(name="bad", colour="red"), "unknown key 'colour'", True),
    "schema": (tpl(name="bad", variables={"who": "string"}), "must be a JSON Schema mapping", True),
    "version": (tpl(name="bad", version="1.0"), "not semver", True),
    "jinja": (tpl(name="bad", template="{% for x in y %}"), "line 1", True),
    "yaml": ("name: bad\nversion: 1.0.0\ntemplate: [unclosed\n", "invalid YAML", False),
    "not-utf8": (b"name: bad\nversion: 1.0.0\ntemplate: caf\xe9\n", "not UTF-8", False),
    "slug": (tpl(name="Bad Name"), "not a slug", False),
}  # fmt: skip


@pytest.fixture(params=sorted(BROKEN))
def broken(request: pytest.FixtureRequest, prompts: Any) -> tuple[str, bool]:
    """A good template `greet` next to bad.yaml, broken in one way; returns (error, named)."""
    text, expected, named = BROKEN[request.param]
    prompts("greet.yaml", tpl())
    path = prompts("bad.yaml", "")
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return expected, named


def test_a_broken_file_does_not_break_other_templates(broken: tuple[str, bool]) -> None:
    expected, named = broken
    bad = str(Path("prompts/bad.yaml"))
    res = cli("render", "greet", "--var", "who=x")
    assert res.exit_code == 0 and res.stdout == "Hello x!\n", res
    if named:
        assert res.stderr == ""
    else:  # a file without a known name is skipped with one warning naming it
        assert res.stderr.count("aicli: warning:") == 1 and bad in res.stderr
        assert expected in res.stderr and "skipped" in res.stderr
    gen = cli("generate", "-T", "greet", "-t", "echo", "--var", "who=x")
    assert gen.exit_code == 0 and gen.stdout == "Hello x!\n", gen
    assert "error" not in gen.stderr


def test_the_broken_template_fails_with_its_own_error(broken: tuple[str, bool]) -> None:
    expected, named = broken
    err = fails("bad")
    assert expected in err and str(Path("prompts/bad.yaml")) in err, err
    if not named:  # why is it unknown? because that file could not be loaded
        assert "unknown template 'bad'" in err and "could not be loaded" in err
    gen = cli("generate", "-T", "bad@1.0.0", "-t", "echo")
    assert gen.exit_code == 2 and gen.stdout == "" and expected in gen.stderr, gen


def test_list_shows_the_good_ones_and_exits_2(broken: tuple[str, bool]) -> None:
    expected, _ = broken
    res = cli("render", "--list")
    assert res.exit_code == 2, res
    assert res.stdout.splitlines()[1].split()[:2] == ["greet", "1.0.0"]
    assert "bad" not in res.stdout and expected not in res.stdout
    assert f"aicli: error: {Path('prompts/bad.yaml')}" in res.stderr and expected in res.stderr
    assert "1 template file could not be loaded" in res.stderr
    data = cli("render", "--list", "--json")
    assert data.exit_code == 2 and [t["name"] for t in json.loads(data.stdout)] == ["greet"]


def test_list_of_the_broken_name_reports_it(broken: tuple[str, bool]) -> None:
    expected, named = broken
    res = cli("render", "--list", "bad" if named else "greet")
    assert res.exit_code == 2 and expected in res.stderr, res


def test_a_duplicate_breaks_every_version_of_that_name_only(prompts: Any) -> None:
    prompts("other.yaml", tpl(name="other"))
    prompts("greet/2.0.0.yaml", tpl(version="2.0.0"))
    prompts("one/greet.yaml", tpl())
    prompts("two/greet.yaml", tpl(template="Hi {{ who }}"))
    for ref in ("greet", "greet@1.0.0", "greet@2.0.0"):
        err = fails(ref, "--var", "who=x")
        assert "greet@1.0.0 is defined twice" in err
        assert str(Path("one/greet.yaml")) in err and str(Path("two/greet.yaml")) in err
    assert rendered("other", "--var", "who=x")["prompt"] == "Hello x!"
    listing = cli("render", "--list", "--json")
    assert listing.exit_code == 2 and "defined twice" in listing.stderr
    keys = [(t["name"], t["version"]) for t in json.loads(listing.stdout)]
    assert keys == [("greet", "2.0.0"), ("other", "1.0.0")]  # neither copy of 1.0.0


def test_warning_for_unreadable_files_is_on_stderr_once(prompts: Any) -> None:
    prompts("greet.yaml", tpl())
    prompts("broken.yaml", "name: broken\ntemplate: [unclosed\n")
    res = run_aicli("render", "greet", "--var", "who=x")
    assert res.exit_code == 0 and res.stdout == "Hello x!\n"
    assert res.stderr.count("aicli: warning:") == 1
    assert str(Path("prompts/broken.yaml")) in res.stderr and "invalid YAML" in res.stderr


def test_lock_writes_the_good_ones_and_reports_broken_files(prompts: Any) -> None:
    prompts("greet.yaml", tpl())
    prompts("bad.yaml", tpl(name="bad", template="{{ y }}", variables={}))
    res = cli("render", "--lock")
    assert res.exit_code == 2 and "added greet@1.0.0" in res.stderr, res
    assert "undeclared variable 'y'" in res.stderr and "not locked" in res.stderr
    lock = yaml.safe_load((prompts.root / "prompts.lock").read_text(encoding="utf-8"))
    assert list(lock) == ["greet@1.0.0"]


def test_a_changed_locked_version_still_stops_every_template_command(prompts: Any) -> None:
    prompts("greet.yaml", tpl())
    one = prompts("one.yaml", tpl(name="one"))
    two = prompts("two.yaml", tpl(name="two"))
    assert cli("render", "--lock").exit_code == 0
    one.write_text(tpl(name="one", template="Hey {{ who }}"), encoding="utf-8")
    two.write_text(tpl(name="two", template="Yo {{ who }}"), encoding="utf-8")
    err = fails("greet", "--var", "who=x")  # release integrity stays global
    assert "one@1.0.0" in err and "bump the version" in err and "also changed: two@1.0.0" in err
    gen = cli("generate", "-T", "greet", "-t", "echo", "--var", "who=x")
    assert gen.exit_code == 2 and "bump the version" in gen.stderr


SUITE = """\
suite: {name}
template: {template}
cases:
  - name: c
    vars: {{who: x}}
    assert: [{{type: contains, value: Hello x}}]
"""


def test_test_prompts_fails_only_suites_using_a_broken_template(prompts: Any) -> None:
    prompts("greet.yaml", tpl())
    prompts("bad.yaml", tpl(name="bad", template="{{ y }}", variables={}))
    prompts("broken.yaml", "template: [unclosed\n")
    prompts("a.test.yaml", SUITE.format(name="a", template="greet"))
    prompts("b.test.yaml", SUITE.format(name="b", template="greet@1.0.0"))
    good = cli("test-prompts", "prompts/a.test.yaml", "prompts/b.test.yaml", "-t", "echo")
    assert good.exit_code == 0, good
    assert good.stderr.count("aicli: warning:") == 1 and "broken.yaml" in good.stderr
    suite = prompts("c.test.yaml", SUITE.format(name="c", template="bad"))
    res = cli("test-prompts", str(suite), "-t", "echo")
    assert res.exit_code == 2, res
    assert "c.test.yaml" in res.stderr and "template 'bad'" in res.stderr
    assert "undeclared variable 'y'" in res.stderr


# ---- output ----------------------------------------------------------------------------------


def test_plain_output_is_system_separator_prompt(prompts: Any) -> None:
    prompts("greet.yaml", tpl(system="You are {{ who }}'s helper.", template="Hi {{ who }}\n\n"))
    res = cli("render", "greet", "--var", "who=Ann")
    assert res.exit_code == 0 and res.stderr == ""
    assert res.stdout == "You are Ann's helper.\n---\nHi Ann\n"


def test_plain_output_without_system_is_just_the_prompt(prompts: Any) -> None:
    prompts("greet.yaml", tpl())
    assert cli("render", "greet", "--var", "who=Ann").stdout == "Hello Ann!\n"


def test_json_output_has_the_contract_fields(prompts: Any) -> None:
    prompts("greet.yaml", tpl(system="Sys"))
    out = rendered("greet", "--var", "who=Ann")
    assert set(out) == {"name", "version", "checksum", "system", "prompt"}
    assert out["system"] == "Sys" and out["prompt"] == "Hello Ann!"
    prompts("greet.yaml", tpl())
    assert rendered("greet", "--var", "who=Ann")["system"] is None


def test_list_plain_and_json(prompts: Any) -> None:
    prompts("a.yaml", tpl(description="Say hello", tier="economy"))
    prompts("b.yaml", tpl(version="1.1.0", description="Say hello again"))
    prompts("c.yaml", tpl(name="other", description="Other one"))
    res = cli("render", "--list")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "CHECKSUM", "TIER", "LOCK", "DESCRIPTION"]
    assert lines[1].split()[:2] == ["greet", "1.0.0"] and "Say hello" in lines[1]
    assert "economy" in lines[1] and "new" in lines[1]
    assert lines[3].split()[0] == "other"
    data = json.loads(cli("render", "--list", "--json").stdout)
    assert [(t["name"], t["version"]) for t in data] == [
        ("greet", "1.0.0"), ("greet", "1.1.0"), ("other", "1.0.0"),
    ]  # fmt: skip
    assert {"name", "version", "checksum", "tier", "description"} <= set(data[0])
    only = json.loads(cli("render", "--list", "other", "--json").stdout)
    assert [t["name"] for t in only] == ["other"]


def test_list_with_no_templates(prompts: Any) -> None:
    res = cli("render", "--list")
    assert res.exit_code == 0 and res.stdout == "" and "no templates" in res.stderr
    assert json.loads(cli("render", "--list", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "missing NAME"),
        (["--list", "--lock"], "exclude each other"),
        (["greet", "--lock"], "--lock takes no NAME"),
        (["--list", "--var", "a=b"], "only apply when rendering"),
    ],
)
def test_usage_errors(prompts: Any, args: list[str], expected: str) -> None:
    assert expected in fails(*args)


def test_render_does_not_import_network_or_sdk_modules(prompts: Any) -> None:
    prompts("greet.yaml", tpl())
    code = (
        "import sys\n"
        "from aicli.cli.app import app\n"
        "try:\n"
        "    app(['render', 'greet', '--var', 'who=x'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('openai', 'httpx', 'httpx2') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )
    assert "Hello x!" in proc.stdout and "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


# ---- the shipped prompts ---------------------------------------------------------------------

SHIPPED = REPO_ROOT / "prompts"
SAMPLES: dict[str, list[str]] = {
    "extraction@1.1.0": [
        "--var", "text=Apple Inc., based in Cupertino, is a technology company.",
        "--var", 'fields=[{"name": "company", "description": "Company name"}]',
    ],
    "extraction@1.2.0": [
        "--var", "text=Apple Inc., based in Cupertino, is a technology company.",
        "--var", 'fields=[{"name": "company", "description": "Company name"},'
        ' {"name": "founded", "description": "Year founded", "type": "integer"}]',
    ],
    "summarize": ["--var", "bullets=2", "--var", "audience=executives"],
    "classify": ["--var", "text=The app crashes on start", "--var", 'labels=["bug", "feature"]'],
    "commit-message": ["--var", "style=plain"],
}  # fmt: skip
STDIN = {"summarize": "Revenue rose 12% in Q3.", "commit-message": "diff --git a/x b/x\n+hi\n"}


@pytest.fixture
def shipped(isolate: Isolated) -> None:
    (isolate.work / "aicli.yaml").write_text(f"prompts_dir: {SHIPPED.as_posix()}\n", "utf-8")


@pytest.mark.parametrize("ref", sorted(SAMPLES))
def test_shipped_prompts_render_with_sample_vars(shipped: None, ref: str) -> None:
    out = rendered(ref, *SAMPLES[ref], input=STDIN.get(ref))
    assert out["system"] and out["prompt"] and len(out["checksum"]) == 12
    assert "{{" not in out["prompt"] and "{%" not in out["prompt"]
    if ref in STDIN:
        assert STDIN[ref].strip() in out["prompt"]


def test_shipped_prompts_match_the_committed_lock() -> None:
    from aicli.templates import TemplateStore

    store = TemplateStore(SHIPPED)
    templates = store.all()  # raises on a changed locked version
    names = {t.name for t in templates}
    assert {"extraction", "summarize", "classify", "commit-message"} <= names
    assert {t.version for t in templates if t.name == "extraction"} >= {"1.1.0", "1.2.0"}
    assert set(store.lock_status().values()) == {"locked"}, store.lock_status()
    assert all(t.description for t in templates)


def test_extraction_versions_differ(shipped: None) -> None:
    args = SAMPLES["extraction@1.1.0"]
    old, new = rendered("extraction@1.1.0", *args), rendered("extraction@1.2.0", *args)
    assert old["checksum"] != new["checksum"] and old["prompt"] != new["prompt"]
    assert rendered("extraction", *args)["version"] == "1.2.0"
