"""`aicli render` picks a template version: the highest release, pins, unknown names and
versions, duplicates, what is not a template."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.render.helpers import Prompts, fails, rendered, tpl
from tests.helpers import Isolated, cli


def test_name_alone_is_the_highest_semver_release(prompts: Prompts) -> None:
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


def test_only_prereleases_then_the_highest_prerelease(prompts: Prompts) -> None:
    prompts("a.yaml", tpl(version="2.0.0-rc.2"))
    prompts("b.yaml", tpl(version="2.0.0-rc.10"))
    assert rendered("greet", "--var", "who=x")["version"] == "2.0.0-rc.10"


def test_pinned_version_renders_exactly_that_one(prompts: Prompts) -> None:
    prompts("greet/1.9.0.yaml", tpl(version="1.9.0", template="old {{ who }}"))
    prompts("greet/1.10.0.yaml", tpl(version="1.10.0", template="new {{ who }}"))
    out = rendered("greet@1.9.0", "--var", "who=Ann")
    assert out["name"] == "greet" and out["version"] == "1.9.0" and out["prompt"] == "old Ann"


def test_unknown_name_lists_close_matches(prompts: Prompts) -> None:
    prompts("s.yaml", tpl(name="summarize"))
    prompts("c.yaml", tpl(name="classify"))
    err = fails("summarise")
    assert "unknown template 'summarise'" in err and "did you mean summarize?" in err
    err = fails("zzz")
    assert "available: classify, summarize" in err


def test_unknown_version_lists_available(prompts: Prompts) -> None:
    prompts("a.yaml", tpl(version="1.0.0"))
    prompts("b.yaml", tpl(version="1.1.0"))
    err = fails("greet@9.9.9")
    assert "has no version 9.9.9" in err and "available: 1.0.0, 1.1.0" in err
    assert "not semver" in fails("greet@1.2")


def test_duplicate_name_version_names_both_files(prompts: Prompts) -> None:
    prompts("one/greet.yaml", tpl())
    prompts("two/greet.yml", tpl(template="other {{ who }}"))
    err = fails("greet")
    assert "greet@1.0.0 is defined twice" in err
    assert str(Path("one/greet.yaml")) in err and str(Path("two/greet.yml")) in err


def test_missing_prompts_dir_says_where_it_looked(isolate: Isolated) -> None:
    (isolate.work / "aicli.yaml").write_text("prompts_dir: nowhere\n", encoding="utf-8")
    err = fails("greet")
    assert "nowhere" in err and "does not exist" in err


def test_suites_and_other_yaml_are_not_templates(prompts: Prompts) -> None:
    prompts("greet.yaml", tpl())
    prompts("greet.test.yaml", "suite: s\ntemplate: greet@1.0.0\ncases: []\n")
    prompts("notes.yaml", "just: data\n")
    prompts(".hidden/x.yaml", "template: {{ broken\n")
    listed = json.loads(cli("render", "--list", "--json").stdout)
    assert [t["name"] for t in listed] == ["greet"]
