"""One broken template file breaks only its own name, never the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.render.helpers import Prompts, fails, rendered, tpl
from tests.helpers import cli, run_aicli

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
def broken(request: pytest.FixtureRequest, prompts: Prompts) -> tuple[str, bool]:
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


def test_a_duplicate_breaks_every_version_of_that_name_only(prompts: Prompts) -> None:
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


def test_warning_for_unreadable_files_is_on_stderr_once(prompts: Prompts) -> None:
    prompts("greet.yaml", tpl())
    prompts("broken.yaml", "name: broken\ntemplate: [unclosed\n")
    res = run_aicli("render", "greet", "--var", "who=x")
    assert res.exit_code == 0 and res.stdout == "Hello x!\n"
    assert res.stderr.count("aicli: warning:") == 1
    assert str(Path("prompts/broken.yaml")) in res.stderr and "invalid YAML" in res.stderr


def test_lock_writes_the_good_ones_and_reports_broken_files(prompts: Prompts) -> None:
    prompts("greet.yaml", tpl())
    prompts("bad.yaml", tpl(name="bad", template="{{ y }}", variables={}))
    res = cli("render", "--lock")
    assert res.exit_code == 2 and "added greet@1.0.0" in res.stderr, res
    assert "undeclared variable 'y'" in res.stderr and "not locked" in res.stderr
    lock = yaml.safe_load((prompts.root / "prompts.lock").read_text(encoding="utf-8"))
    assert list(lock) == ["greet@1.0.0"]


def test_a_changed_locked_version_still_stops_every_template_command(prompts: Prompts) -> None:
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


def test_test_prompts_fails_only_suites_using_a_broken_template(prompts: Prompts) -> None:
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
