"""Arguments and files aicli reads are hostile: a non-UTF-8 argument, a lone surrogate in a vars
file, a recording or a report, a 100,000-deep JSON line, a device as a report. Each is exit 2
with one line naming the argument or the file, never "this is a bug" and never exit 1 for cases
that passed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import child_env

DEEP = "[" * 100_000 + "]" * 100_000


def _suite() -> Path:
    suite = Path("prompts") / "ok.test.yaml"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(
        "suite: ok\nprompt: 'say {{ word }}'\ntier: echo\ncases:\n"
        "  - name: one\n    vars: {word: hi}\n    assert: [{type: contains, value: hi}]\n"
    )
    return suite


def _one_error(done: Any, *words: str) -> None:
    assert done.exit_code == 2, done
    assert "this is a bug" not in done.stderr and "Traceback" not in done.stderr, done
    assert done.stderr.count("aicli: error:") == 1, done
    for word in words:
        assert word in done.stderr, done


# ---- item 2: arguments and vars files -----------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("generate", "-t", "echo", "-m", "a\udcffb", "x"),
        ("render", "--list", "--config", "c\udcff.yaml"),
        ("generate", "-t", "echo", "--var", "k=\udcfe", "x"),
    ],
)
def test_a_non_utf8_argument_is_exit_2_naming_it(
    run_aicli: Any, make_config: Any, args: Any
) -> None:
    make_config()
    done = run_aicli(*args)  # subprocess turns the surrogate back into the raw byte
    _one_error(done, "is not valid UTF-8 text")
    assert "a\ufffdb" in done.stderr or "\ufffd" in done.stderr


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("v.json", '{"input": "\\ud800"}'),
        ("v.yaml", 'input: "bad \\udc00 text"\n'),
        ("deep.json", '{"input": ' + DEEP + "}"),
    ],
)
def test_a_vars_file_with_a_lone_surrogate_or_absurd_nesting_is_exit_2(
    run_aicli: Any, make_config: Any, name: str, text: str
) -> None:
    make_config()
    Path(name).write_text(text, encoding="ascii")
    _template()
    for args in (
        ("render", "t", "--vars-file", name),
        ("generate", "-t", "echo", "--template", "t", "--vars-file", name),
    ):
        _one_error(run_aicli(*args), name)


def test_a_var_given_as_a_json_surrogate_escape_is_exit_2(run_aicli: Any, make_config: Any) -> None:
    make_config()
    _template()
    for args in (("render", "t"), ("generate", "-t", "echo", "--template", "t")):
        _one_error(run_aicli(*args, "--var", 'input="\\ud800"'), "--var input")


def _template() -> None:
    tpl = Path("prompts") / "t"
    tpl.mkdir(parents=True)
    (tpl / "1.0.0.yaml").write_text(
        "name: t\nversion: 1.0.0\ntemplate: 'say {{ input }}'\nvariables: {input: {}}\n"
    )


# ---- items 2 and 3: recordings ------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\n", b'{"key": "k", "content": "\\ud800"}\n', DEEP.encode() + b"\n"],
    ids=["not-utf8", "surrogate", "deep"],
)
def test_recording_into_a_file_that_is_no_recording_is_exit_2_before_the_run(
    run_aicli: Any, make_config: Any, tmp_path: Path, content: bytes
) -> None:
    make_config()
    record = tmp_path / "bad.jsonl"
    record.write_bytes(content)
    report = tmp_path / "r.json"
    done = run_aicli("test-prompts", "--record", str(record), "-o", str(report), str(_suite()))
    _one_error(done, f"{record}:1")
    assert record.read_bytes() == content  # untouched
    assert not report.exists()


@pytest.mark.parametrize(
    "line",
    [DEEP.encode(), b'{"key": "k", "content": "a\\udfffb"}', b"\xc3\x28"],
    ids=["deep", "surrogate", "not-utf8"],
)
def test_a_replay_line_that_is_no_recording_is_exit_2_naming_file_and_line(
    run_aicli: Any, make_config: Any, tmp_path: Path, line: bytes
) -> None:
    make_config()
    suite = _suite()
    record = tmp_path / "good.jsonl"
    assert run_aicli("test-prompts", "--record", str(record), str(suite)).exit_code == 0
    record.write_bytes(record.read_bytes() + line + b"\n")
    done = run_aicli("test-prompts", "--replay", str(record), str(suite))
    _one_error(done, f"{record}:2")


def test_re_recording_a_good_file_still_passes_with_exit_0(
    run_aicli: Any, make_config: Any, tmp_path: Path
) -> None:
    make_config()
    record = tmp_path / "rec.jsonl"
    for _ in range(2):
        done = run_aicli("test-prompts", "--record", str(record), str(_suite()))
        assert done.exit_code == 0, done
    assert len(record.read_text().splitlines()) == 1  # compacted


# ---- item 7: reports and baselines --------------------------------------------------------


def _bounded_run(*args: str) -> subprocess.CompletedProcess[str]:
    """aicli under a 1 GiB address-space limit: reading a device whole would be a MemoryError."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    return subprocess.run(
        [sys.executable, "-m", "aicli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(None),
        cwd=os.getcwd(),
        preexec_fn=limit,
        timeout=60,
    )


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_as_a_report_or_baseline_is_exit_2(make_config: Any, device: str) -> None:
    make_config()
    for args in (
        ("report", "merge", device),
        ("test-prompts", "--baseline", device, str(_suite())),
    ):
        done = _bounded_run(*args)
        assert done.returncode == 2, done
        assert "not a regular file" in done.stderr and device in done.stderr, done.stderr
        assert "this is a bug" not in done.stderr


@pytest.mark.parametrize(
    "text",
    [
        '{"format_version": 1, "results": ' + DEEP + "}",
        '{"format_version": 1, "results": [], "x": "\\ud800"}',
        '{"format_version": 1, "results": [], "x": ' + "[" * 150 + "]" * 150 + "}",
    ],
    ids=["very-deep", "surrogate", "deep"],
)
def test_a_hostile_report_is_exit_2_naming_the_file(
    run_aicli: Any, make_config: Any, text: str
) -> None:
    make_config()
    Path("bad.json").write_text(text)
    _one_error(run_aicli("report", "merge", "bad.json"), "bad.json")
    _one_error(run_aicli("test-prompts", "--baseline", "bad.json", str(_suite())), "bad.json")


def test_a_report_from_a_pipe_is_read(run_aicli: Any, make_config: Any) -> None:
    make_config()
    assert run_aicli("test-prompts", "-o", "r.json", str(_suite())).exit_code == 0
    os.mkfifo("pipe.json")
    writer = subprocess.Popen(["sh", "-c", "cat r.json > pipe.json"])
    done = run_aicli("report", "merge", "pipe.json", "-o", "m.json")
    writer.wait(10)
    assert done.exit_code == 0, done
    assert len(json.loads(Path("m.json").read_text())["results"]) == 1
