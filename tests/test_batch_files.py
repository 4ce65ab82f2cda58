"""The pieces of a batch run without a server: request files, result lines, the state file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aicli.batch.files import request_line, write_request_files
from aicli.batch.results import parse_lines
from aicli.batch.state import BatchRecord, RunState, read_state
from aicli.errors import UsageError


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=0, max_size=40),
    max_requests=st.integers(min_value=1, max_value=7),
    max_bytes=st.integers(min_value=500, max_value=2000),
)
def test_request_files_keep_every_line_within_both_limits(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], max_requests: int, max_bytes: int
) -> None:
    tmp = tmp_path_factory.mktemp("files")
    requests = [(f"id{i}", {"model": "m", "messages": [{"role": "user", "content": "x" * n}]})
                for i, n in enumerate(sizes)]  # fmt: skip
    files = write_request_files(iter(requests), tmp, max_requests=max_requests, max_bytes=max_bytes)
    seen: list[str] = []
    for f in files:
        data = f.path.read_bytes()
        assert len(data) == f.size <= max_bytes
        lines = data.splitlines()
        assert 1 <= len(lines) <= max_requests
        ids = [json.loads(line)["custom_id"] for line in lines]
        assert ids == f.custom_ids
        seen += ids
    assert seen == [cid for cid, _ in requests]


def test_one_request_over_the_size_limit_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    with pytest.raises(ValueError):
        write_request_files(iter([("a", {"x": "y" * 500})]), folder, max_bytes=100)
    assert list(folder.iterdir()) == []


def test_result_lines_keep_what_parsed(caplog: pytest.LogCaptureFixture) -> None:
    good = {"id": "r1", "custom_id": "a", "error": None,
            "response": {"status_code": 200, "body": {"choices": []}}}  # fmt: skip
    failed = {"id": "r2", "custom_id": "b", "response": {"status_code": 400, "body": {
        "error": {"message": "bad \x1b[31mthing"}}}, "error": None}  # fmt: skip
    expired = {"id": "r3", "custom_id": "c", "response": None,
               "error": {"code": "batch_expired", "message": "too late"}}  # fmt: skip
    deep = b"[" * 100_000 + b"]" * 100_000
    lines = [
        json.dumps(good).encode(),
        b"{not json",
        deep,
        json.dumps(failed).encode(),
        b'{"custom_id": 5}',
        json.dumps(expired).encode()[:20],
        json.dumps(expired).encode(),
    ]
    got = list(parse_lines(lines, "batch x"))
    assert [(r.custom_id, r.body is not None) for r in got] == [
        ("a", True),
        ("b", False),
        ("c", False),
    ]
    assert got[1].error == "HTTP 400: bad \\x1b[31mthing" or "\x1b" not in (got[1].error or "")
    assert got[2].error == "batch_expired: too late"
    assert "skipped 4 unreadable result line(s)" in caplog.text


def test_state_file_round_trip_and_hostile_files(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    state = RunState.load(path, "run")
    state.add(BatchRecord(chunk="c1", tier="t", provider="p", model="m", custom_ids=["a", "b"]))
    state.save()
    assert path.stat().st_mode & 0o777 == 0o600
    again = RunState.load(path, "run")
    assert again.batch_for("b") is not None and again.batch_for("z") is None
    for bad in (b"\xff\xfe", b"[" * 100_000, b'{"version": 99, "batches": []}', b"{}"):
        path.write_bytes(bad)
        with pytest.raises(UsageError, match="batch state"):
            read_state(path)
    with pytest.raises(UsageError, match="not a regular file"):
        read_state(tmp_path)


def test_request_line_is_what_the_batch_api_reads() -> None:
    line = json.loads(request_line("k", {"model": "m"}))
    assert line == {"custom_id": "k", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "m"}}  # fmt: skip
