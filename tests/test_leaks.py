"""The API key never leaks to stdout, stderr or any file a run writes; aicli's files are private."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV, Completed, Isolated, cli, run_aicli

NEEDLES = (TEST_KEY, TEST_KEY[-8:])  # the key, and the tail that masked forms tend to keep


def _has_option(command: tuple[str, ...], option: str) -> bool:
    result = cli(*command, "--help")
    return result.exit_code == 0 and option in result.stdout


def _require(command: tuple[str, ...], option: str) -> None:
    if not _has_option(command, option):
        pytest.skip(f"`aicli {' '.join(command)} {option}` is not implemented yet")


def _files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def assert_no_leak(result: Completed, root: Path, skip: tuple[Path, ...] = ()) -> None:
    """Neither the key nor its last 8 characters in stdout, stderr, or any file under root."""
    for needle in NEEDLES:
        assert needle not in result.stdout, f"key on stdout:\n{result}"
        assert needle not in result.stderr, f"key on stderr:\n{result}"
    skipped = {p.resolve() for p in skip}
    for path in _files(root):
        if path.resolve() in skipped:
            continue
        data = path.read_bytes()
        for needle in NEEDLES:
            assert needle.encode() not in data, f"key written to {path}"


# ---- many commands, one rule -----------------------------------------------------------------


@dataclass
class Scenario:
    args: tuple[str, ...]
    exit_code: int
    script: list[str] = field(default_factory=list)  # behaviours for every model
    config: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[FakeOpenAI], None] | None = None


def _one_char_chunks(server: FakeOpenAI) -> None:
    server.chunk_size = 1


SCENARIOS: dict[str, Scenario] = {
    "plain": Scenario(("generate", "hello"), 0),
    "json": Scenario(("generate", "--json", "hello"), 0),
    "verbose": Scenario(("generate", "-v", "hello"), 0),
    "debug": Scenario(("generate", "--debug", "-v", "hello"), 0),
    "sdk-debug-log": Scenario(
        ("generate", "--debug", "-v", "hello"), 0, env={"OPENAI_LOG": "debug"}
    ),
    "stream": Scenario(("generate", "--stream", "hello"), 0, setup=_one_char_chunks),
    "401": Scenario(("generate", "hello"), 3, script=["401"]),
    "401-debug": Scenario(
        ("generate", "--debug", "-v", "hello"), 3, script=["401"], env={"OPENAI_LOG": "debug"}
    ),
    "401-stream": Scenario(("generate", "--stream", "--debug", "hello"), 3, script=["401"]),
    "500": Scenario(("generate", "--debug", "-v", "hello"), 3, script=["500"] * 4),
    "hang-timeout": Scenario(
        ("generate", "--debug", "-v", "hello"),
        3,
        script=["hang"] * 4,
        config={"defaults": {"timeout_seconds": 1}},
    ),
    "malformed": Scenario(("generate", "--debug", "hello"), 3, script=["malformed"] * 4),
    "stream-cut": Scenario(("generate", "--stream", "--debug", "hello"), 3, script=["stream-cut"]),
    "missing-prompt": Scenario(("generate", "--debug"), 2),
    "bad-config": Scenario(("generate", "--debug", "hello"), 2, config={"tiers": {"x": 1}}),
    "bad-flag": Scenario(("generate", "--no-such-flag", "hello"), 2),
    "unknown-tier": Scenario(("generate", "-t", "nope", "hello"), 2),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_key_never_leaks(name: str, server, make_config, isolate: Isolated) -> None:
    scenario = SCENARIOS[name]
    make_config(**scenario.config)
    if scenario.script:
        server.script("*", scenario.script)
    if scenario.setup:
        scenario.setup(server)
    result = run_aicli(*scenario.args, env=scenario.env)
    assert result.exit_code == scenario.exit_code, result
    if scenario.exit_code:
        assert "aicli: error:" in result.stderr, result
    if server.requests:  # the key really was in play
        assert server.requests[0]["headers"]["authorization"] == f"Bearer {TEST_KEY}"
    assert_no_leak(result, isolate.tmp)


def test_401_names_the_variable_not_the_key(server, make_config, isolate: Isolated) -> None:
    make_config()
    server.script("*", ["401"])
    result = run_aicli("generate", "hello")
    assert result.exit_code == 3, result
    assert TEST_KEY_ENV in result.stderr
    assert "*" not in result.stderr, "the server's masked key was passed on"
    assert_no_leak(result, isolate.tmp)


def test_cache_stats_json(server, make_config, isolate: Isolated) -> None:
    _require(("cache", "stats"), "--json")
    make_config()
    assert run_aicli("generate", "hello").exit_code == 0
    result = run_aicli("cache", "stats", "--json")
    assert result.exit_code == 0, result
    assert json.loads(result.stdout)["entries"] >= 1
    assert_no_leak(result, isolate.tmp)


def test_render_list(make_config, isolate: Isolated) -> None:
    _require(("render",), "--list")
    make_config()
    prompts = isolate.work / "prompts"
    prompts.mkdir(exist_ok=True)
    (prompts / "hello.yaml").write_text(
        "name: hello\nversion: 1.0.0\ntemplate: 'Hello {{ who }}'\n"
        "variables:\n  who: {type: string}\n",
        encoding="utf-8",
    )
    result = run_aicli("render", "--list")
    assert result.exit_code == 0, result
    assert "hello" in result.stdout
    assert_no_leak(result, isolate.tmp)


def _suite(path: Path) -> Path:
    cases = [
        {
            "name": f"case{i}",
            "vars": {"word": f"w{i}"},
            "assert": [{"type": "contains", "value": f"w{i}"}],
        }
        for i in range(3)
    ]
    suite = {"suite": "leaks", "prompt": "Say {{ word }}", "tier": "standard", "cases": cases}
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


REPORTS = ("report.json", "report.jsonl", "report.xml", "report.html")


def _run_suite(isolate: Isolated, *extra: str) -> tuple[Completed, list[Path]]:
    suite = _suite(isolate.work / "leaks.test.yaml")
    record = isolate.work / "out" / "answers.jsonl"
    record.parent.mkdir(exist_ok=True)
    outputs = [isolate.work / "out" / name for name in REPORTS]
    args = ["test-prompts", str(suite), "--record", str(record), *extra]
    for path in outputs:
        args += ["-o", str(path)]
    return run_aicli(*args), [record, *outputs]


def test_test_prompts_records_and_reports(server, make_config, isolate: Isolated) -> None:
    _require(("test-prompts",), "--record")
    make_config()
    server.script("*", ["401"])  # one case fails with an api_error that lands in every report
    result, written = _run_suite(isolate, "--debug")
    assert result.exit_code == 1, result
    for path in written:
        assert path.is_file() and path.stat().st_size > 0, path
    assert_no_leak(result, isolate.tmp)


# ---- the key belongs in the environment, never in the config file -------------------------


def _config_with(
    make_config: Any, server: FakeOpenAI, edit: Callable[[dict[str, Any]], None]
) -> Path:
    from tests.helpers import default_config

    data = default_config(server.base_url)
    edit(data)
    return make_config(yaml.safe_dump(data, sort_keys=False))


def test_literal_api_key_in_a_provider_is_refused(server, make_config, isolate: Isolated) -> None:
    path = _config_with(
        make_config, server, lambda d: d["providers"]["fake"].update(api_key=TEST_KEY)
    )
    result = run_aicli("generate", "hello")
    assert result.exit_code == 2, result
    assert result.stderr.startswith("aicli: error:"), result
    assert "api_key_env" in result.stderr, result
    assert_no_leak(result, isolate.tmp, skip=(path,))
    debug = run_aicli("generate", "--debug", "hello")
    assert debug.exit_code == 2, debug
    assert_no_leak(debug, isolate.tmp, skip=(path,))
    assert server.requests == []


LITERAL_KEY_PLACES: dict[str, Callable[[dict[str, Any]], None]] = {
    "top-level": lambda d: d.update(api_key=TEST_KEY),
    "tier": lambda d: d["tiers"]["standard"].update(api_key=TEST_KEY),
    "defaults": lambda d: d["defaults"].update(api_key=TEST_KEY),
    "echo-provider": lambda d: d["providers"]["echo"].update(api_key=TEST_KEY),
    # a common slip: the key pasted where the NAME of its variable belongs
    "key-as-api_key_env": lambda d: d["providers"]["fake"].update(api_key_env=TEST_KEY),
}


@pytest.mark.parametrize("place", list(LITERAL_KEY_PLACES))
def test_key_written_into_the_config_is_never_echoed(
    place: str, server, make_config, isolate: Isolated
) -> None:
    path = _config_with(make_config, server, LITERAL_KEY_PLACES[place])
    for debug in ((), ("--debug",)):
        result = run_aicli("generate", *debug, "--no-cache", "hello")
        assert result.exit_code == 2, result
        assert debug or result.stderr.startswith("aicli: error:"), result
        assert_no_leak(result, isolate.tmp, skip=(path,))
    assert server.requests == []


def test_credentials_in_base_url_are_never_echoed(server, make_config, isolate: Isolated) -> None:
    host = server.base_url.split("://", 1)[1]
    path = _config_with(
        make_config,
        server,
        lambda d: d["providers"]["fake"].update(base_url=f"http://user:{TEST_KEY}@{host}"),
    )
    server.script("*", ["500"] * 4)  # the error message names the endpoint
    result = run_aicli("generate", "--no-cache", "-v", "hello")
    assert result.exit_code in (2, 3), result
    assert_no_leak(result, isolate.tmp, skip=(path,))


# ---- permissions -----------------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000, so only aicli's own care makes its files private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _loose(root: Path) -> list[str]:
    """Paths under root (root included) that group or others may read, write or enter."""
    bad = []
    for dirpath, dirs, names in os.walk(root):
        for path in [Path(dirpath)] + [Path(dirpath) / n for n in names]:
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            if stat.S_IMODE(mode) & 0o077:
                bad.append(f"{path} {stat.S_IMODE(mode):o}")
        dirs.sort()
    return bad


def test_cache_is_owner_only(server, make_config, isolate: Isolated, open_umask) -> None:
    make_config()
    assert run_aicli("generate", "hello").exit_code == 0
    cache = isolate.cache_dir
    assert cache.is_dir()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert any(p.is_file() for p in cache.rglob("*")), "nothing was cached"
    assert not _loose(cache), _loose(cache)
    assert run_aicli("generate", "hello again").exit_code == 0  # a second process, same rule
    assert run_aicli("cache", "stats").exit_code == 0
    assert not _loose(cache), _loose(cache)


def test_new_nested_cache_dir_is_owner_only(
    server, make_config, isolate: Isolated, open_umask
) -> None:
    make_config()
    target = isolate.tmp / "deep" / "new" / "cache"
    result = run_aicli("generate", "hello", env={"AICLI_CACHE_DIR": str(target)})
    assert result.exit_code == 0, result
    assert not _loose(target), _loose(target)


def test_empty_precreated_cache_dir_is_tightened(server, make_config, isolate: Isolated) -> None:
    make_config()
    isolate.cache_dir.mkdir(mode=0o755)
    os.chmod(isolate.cache_dir, 0o755)
    assert run_aicli("generate", "hello").exit_code == 0
    assert not _loose(isolate.cache_dir), _loose(isolate.cache_dir)


def test_world_writable_cache_dir_is_refused(server, make_config, isolate: Isolated) -> None:
    make_config()
    isolate.cache_dir.mkdir()
    os.chmod(isolate.cache_dir, 0o777)
    result = run_aicli("generate", "hello")
    assert result.exit_code == 2, result
    assert result.stderr.startswith("aicli: error:") and str(isolate.cache_dir) in result.stderr
    assert server.requests == [], "nothing should be sent when the answer could not be cached"
    assert stat.S_IMODE(isolate.cache_dir.stat().st_mode) == 0o777  # not silently changed


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to chown")
def test_cache_dir_owned_by_another_user_is_refused(server, make_config, isolate: Isolated) -> None:
    make_config()
    isolate.cache_dir.mkdir(mode=0o700)
    os.chown(isolate.cache_dir, 65534, 65534)
    result = run_aicli("generate", "hello")
    assert result.exit_code == 2, result
    assert "another user" in result.stderr or "owned" in result.stderr, result


def test_recordings_and_reports_are_owner_only(
    server, make_config, isolate: Isolated, open_umask
) -> None:
    _require(("test-prompts",), "--record")
    make_config()
    result, written = _run_suite(isolate)
    assert result.exit_code == 0, result
    for path in written:
        assert path.is_file(), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} {path.stat().st_mode:o}"
