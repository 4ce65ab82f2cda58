"""`aicli render` checksums and the prompts lock file."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.cli.render.helpers import Prompts, fails, rendered, tpl
from tests.helpers import cli


def test_checksum_ignores_key_order_and_yaml_style(prompts: Prompts) -> None:
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
def test_any_content_change_changes_the_checksum(prompts: Prompts, change: dict[str, Any]) -> None:
    prompts("a.yaml", tpl())
    before = rendered("greet", "--var", "who=xy")["checksum"]
    prompts("a.yaml", tpl(**change))
    assert rendered("greet", "--var", "who=xy")["checksum"] != before


def test_lock_records_then_a_changed_version_must_be_bumped(prompts: Prompts) -> None:
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


def test_lock_sorts_by_name_then_semver(prompts: Prompts) -> None:
    for name, version in [("b", "1.10.0"), ("a", "2.0.0"), ("b", "1.9.0"), ("a", "1.0.0")]:
        prompts(f"{name}-{version}.yaml", tpl(name=name, version=version))
    assert cli("render", "--lock").exit_code == 0
    lines = [
        line.split(":")[0]
        for line in (prompts.root / "prompts.lock").read_text(encoding="utf-8").splitlines()
        if not line.startswith("#")
    ]
    assert lines == ["a@1.0.0", "a@2.0.0", "b@1.9.0", "b@1.10.0"]


def test_corrupt_lock_file_is_exit_2(prompts: Prompts) -> None:
    prompts("greet.yaml", tpl())
    prompts("prompts.lock", "- not a mapping\n")
    assert "prompts.lock" in fails("greet", "--var", "who=x")
