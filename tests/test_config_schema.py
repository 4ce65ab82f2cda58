"""The pydantic-free config check never accepts what the pydantic models reject, nor differs."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from aicli.config import DEFAULTS_FILE, _one_or_many_fallbacks, load_config
from aicli.config_schema import check, hints, is_settings, pydantic_model
from aicli.settings import ConfigFile
from aicli.yamlsafe import load
from tests.helpers import REPO_ROOT, child_env

POOL: list[Any] = [
    0, 1, -1, 2, 2.5, 21, 10**30, True, False, None, "", "x", "200", "openai", "email",
    [], ["a"], ["email"], [1], {}, {"a": 1}, float("nan"), float("inf"),
]  # fmt: skip


def settings_with(path: list[str], value: Any) -> dict[str, Any]:
    """Minimal valid data with `value` placed at `path`."""
    data: dict[str, Any] = {"tiers": {"t": {"model": "m"}}, "default_tier": "t"}
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return data


def every_path() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(kind: Any, prefix: list[str]) -> None:
        for name, hint in hints(kind).items():
            here = [*prefix, name]
            paths.append(here)
            inner = _settings_in(hint)
            if inner is not None:
                walk(inner, [*here, "t"] if _is_dict(hint) else here)

    walk(ConfigFile, [])
    return paths


def _is_dict(hint: Any) -> bool:
    return getattr(hint, "__origin__", None) is dict


def _settings_in(hint: Any) -> Any:
    if is_settings(hint):
        return hint
    if _is_dict(hint) and is_settings(hint.__args__[1]):
        return hint.__args__[1]
    return None


def same(fast: Any, slow: Any) -> bool:
    """Equal, with NaN equal to itself."""
    if dataclasses.is_dataclass(fast):
        return all(
            same(getattr(fast, f.name), getattr(slow, f.name)) for f in dataclasses.fields(fast)
        )
    if isinstance(fast, float) and math.isnan(fast):
        return isinstance(slow, float) and math.isnan(slow)
    if isinstance(fast, dict):
        return fast.keys() == slow.keys() and all(same(fast[k], slow[k]) for k in fast)
    if isinstance(fast, list):
        return len(fast) == len(slow) and all(same(a, b) for a, b in zip(fast, slow, strict=True))
    return type(fast) is type(slow) and fast == slow


def agree(data: dict[str, Any]) -> None:
    fast = check(ConfigFile, data)
    try:
        model = pydantic_model(ConfigFile).model_validate(data)
    except ValidationError:
        assert fast is None, f"accepted what pydantic rejects: {data}"
        return
    slow = check(ConfigFile, model.model_dump(exclude_unset=True))
    assert slow is not None, f"pydantic's own output is not accepted: {data}"
    if fast is not None:
        assert same(fast, slow), data


@pytest.mark.parametrize("path", every_path(), ids=".".join)
def test_every_key_with_every_kind_of_value(path: list[str]) -> None:
    for value in POOL:
        agree(settings_with(path, value))
    agree(settings_with([*path[:-1], "no_such_key"], 1))


def test_the_builtin_config_passes_the_quick_check() -> None:
    data = _one_or_many_fallbacks(load(DEFAULTS_FILE.read_text()))
    assert check(ConfigFile, data) is not None
    agree(data)


def test_floats_come_out_as_floats_and_tiers_inherit() -> None:
    cfg = load_config(REPO_ROOT / "config.example.yaml")
    assert cfg.tiers["standard"].timeout_seconds == 30.0
    assert type(cfg.tiers["standard"].price.input_per_1m) is float
    assert cfg.tiers["standard"].fallback == ["economy"]


def test_render_and_a_cache_hit_do_not_import_pydantic(tmp_path) -> None:
    env = child_env({"XDG_CACHE_HOME": str(tmp_path), "AICLI_CACHE_DIR": None})
    example = str(REPO_ROOT / "config.example.yaml")
    for args in (
        ["render", "summarize", "--config", example, "--var", "input=hi"],
        ["generate", "-t", "echo", "x"],
        ["generate", "-t", "echo", "x"],  # the hit
    ):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "aicli", *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
        assert "pydantic" not in modules, args
