"""Malformed input never ends in "this is a bug": a property-based fuzz of config, suites, vars,
schemas and flags (in-process, bounded), plus table-driven cases for the real I/O ones.

Each property runs a fixed, derandomized set of examples so CI is repeatable and quick; the
assertion is the contract for bad input: exit 2 (or 3, or a suite's 1) and at most one
`aicli: error:` line, never a traceback, never exit 1 from a crash.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import cli, run_aicli

FUZZ = settings(  # AICLI_FUZZ_EXAMPLES=2000 AICLI_FUZZ_RANDOM=1 for a longer hunt
    max_examples=int(os.environ.get("AICLI_FUZZ_EXAMPLES", "25")),
    deadline=None,
    derandomize=not os.environ.get("AICLI_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- building blocks --------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 2**63, 10**4000, 1e308, -0.0]),
    st.floats(allow_nan=True, allow_infinity=True),
)
URLS = st.sampled_from(
    [
        "http://[::1",
        "http://127.0.0.1:99999/v1",
        "http://127.0.0.1:-1",
        "http://127.0.0.1:0",
        "ftp://x",
        "not a url",
        "http://",
        "http://a b",
        "http://h\x00st",
        "http://%zz",
        "https://example.invalid/v1",
        "",
    ]
)
TEXT = st.one_of(st.text(max_size=20), URLS, st.sampled_from(["*a", "&a", "{{ x }}", "!!int", "~"]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def dump(data: Any) -> str:
    """YAML for any generated value; huge ints become YAML text too (PyYAML writes them)."""
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


HOSTILE = [  # appended as one more key: what a hand-written config or suite rarely holds
    "[" * 300 + "]" * 300,
    "9" * 5000,
    "!!set {a}",
    "!!binary AAAA",
    "!!timestamp 2020-13-45",
    "!!python/object:os.system x",
    "&a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nzb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "zc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nzd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
    ".nan",
    "*undefined",
]


def mangled(text: str, cut: int, junk: str) -> str:
    """The YAML with a piece cut out and junk spliced in: broken syntax of every kind."""
    at = cut % (len(text) + 1)
    return text[:at] + junk + text[at + len(junk) :]


def no_crash(result: Any, allowed: tuple[int, ...] = (0, 2, 3)) -> None:
    assert result.exit_code in allowed, result
    assert "this is a bug" not in result.output, result
    assert "Traceback" not in result.output, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("aicli: error:")]
    assert len(errors) <= 1, result


ECHO = {"providers": {"e": {"type": "echo"}}, "tiers": {"echo": {"model": "m", "provider": "e"}}}

# --- config -----------------------------------------------------------------------------------

SETTINGS = st.fixed_dictionaries(
    {},
    optional={
        "max_tokens": NUMBERS,
        "temperature": NUMBERS,
        "timeout_seconds": NUMBERS,
        "max_retries": NUMBERS,
        "cache_ttl": NUMBERS,
        "rate_limit": NUMBERS,
    },
)
PROVIDER = st.fixed_dictionaries(
    {"base_url": st.one_of(URLS, VALUES)},
    optional={"type": st.sampled_from(["openai", "echo", "x", 1]), "api_key_env": TEXT},
)
TIER = st.fixed_dictionaries(
    {"model": st.one_of(TEXT, VALUES), "provider": st.sampled_from(["p", "echo", "nope"])},
    optional={
        "fallback": st.one_of(TEXT, st.lists(TEXT, max_size=3)),
        "price": st.dictionaries(st.sampled_from(["input_per_1m", "output_per_1m"]), NUMBERS),
        "max_tokens": NUMBERS,
        "timeout_seconds": NUMBERS,
    },
)
CONFIG = st.fixed_dictionaries(
    {},
    optional={
        "default_tier": st.sampled_from(["t", "echo", "nope"]),
        "providers": st.dictionaries(st.sampled_from(["p", "q"]), PROVIDER, max_size=2),
        "tiers": st.dictionaries(st.sampled_from(["t", "echo"]), TIER, max_size=2),
        "defaults": SETTINGS,
        "cache": st.dictionaries(st.sampled_from(["dir", "size_limit_mb"]), VALUES),
        "budget": st.dictionaries(st.just("max_cost_usd"), NUMBERS),
        "redact": st.dictionaries(st.sampled_from(["enabled", "kinds"]), VALUES),
        "prompts_dir": VALUES,
    },
)


@FUZZ
@given(
    data=st.one_of(CONFIG, VALUES),
    cut=st.integers(0, 400),
    junk=st.sampled_from(["", "[", ": :", "\t", "&a *a", "- ", "{{", "'"]),
    hostile=st.sampled_from(HOSTILE),
)
def test_config_fuzz(data: Any, cut: int, junk: str, hostile: str) -> None:
    text = dump(data)
    extra = f"{text}\nzz: {hostile}\n" if isinstance(data, dict) and data else f"zz: {hostile}\n"
    for variant in (text, mangled(text, cut, junk), extra):
        Path("aicli.yaml").write_text(variant, encoding="utf-8")
        no_crash(cli("generate", "--cache-only", "--no-redact", "hi"))
    no_crash(cli("tiers"))


# --- suites -----------------------------------------------------------------------------------

ASSERTION = st.one_of(
    st.sampled_from(["is-json", "contains", "latency", "llm-rubric", "nope", "not-is-json"]),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "regex",
                    "not-regex",
                    "contains-any",
                    "icontains-all",
                    "equals",
                    "is-json",
                    "json-schema",
                    "structure",
                    "cost",
                    "starts-with",
                    "llm-rubric",
                    "x",
                ]
            ),
        },
        optional={
            "value": st.one_of(VALUES, st.sampled_from(["(", "(a|aa)+$", "[", "\\"])),
            "threshold": NUMBERS,
            "weight": NUMBERS,
        },
    ),
)
CASE = st.fixed_dictionaries(
    {"name": st.one_of(TEXT, NUMBERS)},
    optional={
        "vars": st.one_of(st.dictionaries(st.sampled_from(["w", "x"]), VALUES), VALUES),
        "assert": st.one_of(st.lists(ASSERTION, max_size=3), VALUES),
        "threshold": NUMBERS,
        "skip": VALUES,
    },
)
SUITE = st.fixed_dictionaries(
    {
        "suite": st.one_of(st.just("s"), TEXT),
        "cases": st.one_of(st.lists(CASE, max_size=3), VALUES),
    },
    optional={
        "prompt": st.one_of(st.just("say {{ w }}"), TEXT),
        "template": TEXT,
        "defaults": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"vars": VALUES, "assert": st.lists(ASSERTION, max_size=2)}
            ),
            VALUES,
        ),
        "tier": st.one_of(st.just("echo"), TEXT),
    },
)


@FUZZ
@given(
    data=st.one_of(SUITE, VALUES),
    cut=st.integers(0, 400),
    junk=st.sampled_from(["", "[", ": :", "*a", "- -", "\x00"]),
    hostile=st.sampled_from(HOSTILE),
)
def test_suite_fuzz(data: Any, cut: int, junk: str, hostile: str) -> None:
    Path("aicli.yaml").write_text(dump({**ECHO, "default_tier": "echo"}))
    text = dump(data)
    extra = f"{text}\nzz: {hostile}\n" if isinstance(data, dict) and data else f"zz: {hostile}\n"
    for variant in (text, mangled(text, cut, junk), extra):
        Path("s.test.yaml").write_text(variant, encoding="utf-8")
        # 1: cases failed; 4: never (no budget); the rest as for every command
        no_crash(cli("test-prompts", "s.test.yaml", "--no-cache"), (0, 1, 2))


# --- vars files and schemas -------------------------------------------------------------------


@FUZZ
@given(data=VALUES, as_json=st.booleans())
def test_vars_file_fuzz(data: Any, as_json: bool) -> None:
    Path("aicli.yaml").write_text("prompts_dir: prompts\n")
    Path("prompts").mkdir(exist_ok=True)
    variables = {"w": {"type": "string", "pattern": "^(a|aa)+$"}, "x": {"default": 1}}
    Path("prompts/t.yaml").write_text(
        dump(
            {"name": "t", "version": "1.0.0", "template": "{{ w }} {{ x }}", "variables": variables}
        )
    )
    name = "v.json" if as_json else "v.yaml"
    Path(name).write_text(json.dumps(data, default=str) if as_json else dump(data))
    no_crash(cli("render", "t", "--vars-file", name), (0, 2))


SCHEMA = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(st.sampled_from(["object", "string", "array", "nope"]), VALUES),
            "$ref": st.sampled_from(
                [
                    "#",
                    "#/$defs/a",
                    "#/nope",
                    "http://127.0.0.1:9/x",
                    "other.json",
                    "#/definitions/%zz",
                ]
            ),
            "pattern": st.sampled_from(["(a|aa)+$", "(", "^x", "\\"]),
            "$defs": st.just({"a": {"type": "string"}}),
            "required": VALUES,
            "$schema": st.sampled_from(
                ["https://json-schema.org/draft/2020-12/schema", "x", "http://127.0.0.1:9/s"]
            ),
        },
    ),
    lambda inner: st.fixed_dictionaries(
        {},
        optional={
            "properties": st.dictionaries(st.text(max_size=4), inner, max_size=3),
            "items": inner,
            "allOf": st.lists(inner, max_size=2),
        },
    ),
    max_leaves=6,
)


@FUZZ
@given(schema=st.one_of(SCHEMA, VALUES))
def test_schema_fuzz(schema: Any) -> None:
    Path("aicli.yaml").write_text(dump({**ECHO, "default_tier": "echo"}))
    Path("s.json").write_text(json.dumps(schema, default=str))
    no_crash(cli("generate", "--schema", "s.json", "--no-cache", '{"a": "aaab"}'))
    suite = {
        "suite": "s",
        "prompt": "{}",
        "cases": [{"name": "a", "assert": [{"type": "json-schema", "value": schema}]}],
    }
    Path("s.test.yaml").write_text(dump(suite))
    no_crash(cli("test-prompts", "s.test.yaml", "--no-cache"), (0, 1, 2))


# --- flags ------------------------------------------------------------------------------------

FLAG_VALUES = st.one_of(
    st.integers().map(str),
    st.sampled_from(
        ["10" * 200, "1000000000", "1e400", "nan", "inf", "-inf", "-0", "0x10", "", " ", "1_000"]
    ),
    st.floats().map(repr),
    st.text(max_size=10),
)
GENERATE_FLAGS = [
    "--max-tokens",
    "--temperature",
    "--seed",
    "--max-cost",
    "-t",
    "-m",
    "--schema",
    "--vars-file",
    "-T",
    "--var",
]
SUITE_FLAGS = [
    "--repeat",
    "-j",
    "--pass-rate",
    "--max-cost",
    "-k",
    "-t",
    "--grader",
    "-o",
    "--replay",
    "--record",
]


@FUZZ
@given(flags=st.lists(st.tuples(st.sampled_from(GENERATE_FLAGS), FLAG_VALUES), max_size=3))
def test_generate_flag_fuzz(flags: list[tuple[str, str]]) -> None:
    Path("aicli.yaml").write_text(dump({**ECHO, "default_tier": "echo"}))
    args = [part for pair in flags for part in pair]
    no_crash(cli("generate", "--no-cache", *args, "hi"), (0, 2, 3, 4))


@FUZZ
@given(flags=st.lists(st.tuples(st.sampled_from(SUITE_FLAGS), FLAG_VALUES), max_size=3))
def test_suite_flag_fuzz(flags: list[tuple[str, str]]) -> None:
    Path("aicli.yaml").write_text(dump({**ECHO, "default_tier": "echo"}))
    suite = {"suite": "s", "prompt": "hi", "cases": [{"name": "a", "assert": ["is-json"]}]}
    Path("s.test.yaml").write_text(dump(suite))
    args = [part for pair in flags for part in pair]
    no_crash(cli("test-prompts", "s.test.yaml", "--no-cache", *args), (0, 1, 2, 4))


# --- table-driven: what only a real process shows ---------------------------------------------


def _echo_config() -> None:
    Path("aicli.yaml").write_text(dump({**ECHO, "default_tier": "echo"}))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["generate", "--no-cache", "hi"], ["--help"], ["--version"]])
def test_a_full_stdout_is_exit_2(args: list[str]) -> None:
    _echo_config()
    import subprocess

    from tests.helpers import child_env

    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "aicli", *args], stdout=full, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, env=child_env(None), timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "aicli: error: cannot write the output: No space left on device\n"
        "  hint: check where stdout goes\n"
    )


@pytest.mark.skipif(os.name != "posix", reason="needs fd juggling")
def test_a_closed_stdout_is_exit_2() -> None:
    _echo_config()
    import subprocess

    from tests.helpers import child_env

    proc = subprocess.run(
        [sys.executable, "-c", "import os, runpy, sys; os.close(1); sys.argv = ['aicli', "
         "'generate', '--no-cache', 'hi']; runpy.run_module('aicli', run_name='__main__')"],
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=child_env(None),
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("aicli: error: cannot write the output: ")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1", "not a valid URL"),
        ("http://127.0.0.1:99999/v1", "not a valid URL"),
        ("http://127.0.0.1:-1", "not a valid URL"),
        ("http://127.0.0.1:0/v1", "port 0"),
        ("ftp://example.com", "http(s)://host"),
        ("not a url", "spaces"),
        ("http://", "http(s)://host"),
    ],
)
def test_bad_base_urls_are_config_errors(url: str, message: str) -> None:
    config = {"providers": {"p": {"base_url": url, "api_key_env": "K"}},
              "tiers": {"t": {"model": "m", "provider": "p"}}, "default_tier": "t"}  # fmt: skip
    Path("aicli.yaml").write_text(dump(config))
    result = run_aicli("generate", "hi", env={"K": "sk-x"}, timeout=60)
    assert result.exit_code == 2, result
    assert "providers.p.base_url" in result.stderr and message in result.stderr, result


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_tokens", 10**30),
        ("timeout_seconds", float("inf")),
        ("rate_limit", float("nan")),
        ("cache_ttl", 10**20),
    ],
)
def test_absurd_numbers_in_config_are_exit_2(setting: str, value: Any) -> None:
    Path("aicli.yaml").write_text(
        dump({**ECHO, "default_tier": "echo", "defaults": {setting: value}})
    )
    no_crash(result := cli("generate", "hi"))
    assert result.exit_code == 2 and f"defaults.{setting}" in result.stderr, result


@pytest.mark.parametrize(
    "args",
    [
        ["test-prompts", "s.test.yaml", "--repeat", "1000000000"],
        ["test-prompts", "s.test.yaml", "-j", "1000000000"],
        ["generate", "--max-tokens", "1" + "0" * 40, "hi"],
        ["generate", "--seed", "1" + "0" * 40, "hi"],
        ["generate", "--max-cost", "1e400", "hi"],
    ],
)
def test_absurd_flags_are_exit_2_at_once(args: list[str]) -> None:
    _echo_config()
    Path("s.test.yaml").write_text("suite: s\nprompt: hi\ncases: [{name: a}]\n")
    result = cli(*args)
    assert result.exit_code == 2, result
    assert result.stderr.startswith("aicli: error: "), result
