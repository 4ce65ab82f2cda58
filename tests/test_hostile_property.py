"""Property: arbitrary Unicode (lone surrogates, controls, escape sequences, bidi overrides, NULs,
CI workflow commands, the key itself) in every field of a provider's answer and in every name a
user supplies (suite, case, tier, template, variable) never ends in a traceback or "this is a
bug", never puts a control character on stdout or stderr, and never shows the key anywhere."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV, default_config, run_aicli

NASTY = [
    "\ud800", "\udfff", "\udcff", "\x00", "\x1b[2J", "\x1b]0;TITLE\x07", "\x9b31m", "\u202e",
    "\u2066", "\u2028", "\r", "\n::error::pwned", "##[error]x", "\t", "\x7f", "{key}", "\ufffe",
]  # fmt: skip
_piece = st.one_of(st.characters(exclude_categories=()), st.sampled_from(NASTY))
_text = st.lists(_piece, max_size=8).map("".join)


# A benign value half the time, so that runs also get past the config and suite checks.
def _field(benign: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(benign), _text, _text.map(lambda t: benign + t))


# Any C0/C1 control but the line feed, bidi controls and line separators, lone surrogates.
CONTROL = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
# JSON escapes such text as \uXXXX, except what it carries raw (bidi, separators).
RAW_IN_JSON = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _no_key(text: str, where: str) -> None:
    low = text.lower()
    assert TEST_KEY.lower() not in low and TEST_KEY[-12:].lower() not in low, (where, text)


def _sane(done: Any, where: str, *, stdout_json: bool = False) -> None:
    for bad in ("Traceback", "this is a bug", "Exception ignored"):
        assert bad not in done.stderr, (where, done)
    assert not CONTROL.search(done.stderr.replace("\n", "")), (where, done.stderr)
    pattern = RAW_IN_JSON if stdout_json else CONTROL
    assert not pattern.search(done.stdout.replace("\n", "")), (where, done.stdout)
    _no_key(done.stdout + done.stderr, where)


def _arg(text: str) -> str:
    """text as an argument when the OS can pass it (undecodable bytes arrive as \\udc80-\\udcff)."""
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return "x"
    return text.replace("\x00", "") or "x"


def _files_text(folder: Path) -> str:
    return "".join(
        p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()
    )


@settings(
    max_examples=int(os.environ.get("AICLI_HOSTILE_EXAMPLES", "8")),
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # no shrinking: each example is ~2 s
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tier=_field("standard"),
    suite=_field("suite"),
    case=_field("case"),
    template=_field("tpl"),
    var=_field("word"),
    value=_text,
    model=_text,
    ident=_text,
    finish=_text,
    content=_text,
    error=_text,
    fail=st.booleans(),
)
def test_hostile_text_everywhere(
    server: FakeOpenAI,
    tier: str,
    suite: str,
    case: str,
    template: str,
    var: str,
    value: str,
    model: str,
    ident: str,
    finish: str,
    content: str,
    error: str,
    fail: bool,
) -> None:
    server.reset()
    server.fields = {"model": model, "id": ident, "finish_reason": finish, "error": error}
    server.set_answer("*", content.replace("{key}", TEST_KEY))
    if fail:
        server.script("*", ["400"] * 10)
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        root = Path(tmp)
        config = default_config(server.base_url)
        config["tiers"] = {
            tier: {"model": "m", "provider": "fake"},
            "echo": config["tiers"]["echo"],
        }
        config["default_tier"] = tier
        Path("aicli.yaml").write_text(
            yaml.safe_dump(config), encoding="utf-8", errors="surrogatepass"
        )
        tpl = Path("prompts") / "templates"
        tpl.mkdir(parents=True)
        (tpl / "t.yaml").write_text(
            f"name: {json.dumps(template)}\nversion: 1.0.0\n"
            f"template: {json.dumps('say {{ ' + var + ' }}')}\n"
            f"variables: {{{json.dumps(var)}: {{}}}}\n"
        )
        Path("prompts/x.test.yaml").write_text(
            f"suite: {json.dumps(suite)}\ntemplate: {json.dumps(template)}\ncases:\n"
            f"  - name: {json.dumps(case)}\n    vars: {{{json.dumps(var)}: {json.dumps(value)}}}\n"
            f"    assert: [{{type: contains, value: {json.dumps(value)}}}]\n"
        )
        env = {"AICLI_CACHE_DIR": str(root / "cache"), TEST_KEY_ENV: TEST_KEY, "COLUMNS": "80"}
        outs = [root / f"r.{ext}" for ext in ("md", "xml", "json")]
        args = [a for out in outs for a in ("-o", str(out))]
        ran = run_aicli("test-prompts", *args, "prompts/x.test.yaml", env=env)
        assert ran.exit_code in (0, 1, 2), ran
        _sane(ran, "test-prompts")
        if ran.exit_code != 2:  # (report merge of such reports: tests/test_hostile_names.py)
            for out in outs[:2]:
                text = out.read_text(encoding="utf-8")
                assert not CONTROL.search(text.replace("\n", "")), (out, text)
        made = run_aicli("generate", "--json", "-v", "--no-stream", "--", _arg(content), env=env)
        assert made.exit_code in (0, 2, 3), made
        _sane(made, "generate", stdout_json=True)
        if made.exit_code == 0:
            answer = json.loads(made.stdout)
            assert not CONTROL.search(answer["model_used"]), answer
        _no_key(_files_text(root), "files")
