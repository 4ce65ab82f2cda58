"""Record/replay files: round trip, streaming writes, last line wins, malformed lines, safety."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from aicli.cache import CacheEntry
from aicli.errors import UsageError
from aicli.recording import Recorder
from aicli.replay import ReplayStore
from aicli.types import TemplateRef, Usage

TPL = TemplateRef("extraction", "1.2.0", "abcdef123456")


def entry(content: str = '{"company": "Apple"}', **kw: object) -> CacheEntry:
    fields: dict[str, object] = {
        "content": content,
        "model_used": "gpt-4o-mini",
        "provider": "openai",
        "tier": "economy",
        "usage": Usage(12, 8, 20),
        "cost_usd": 0.00042,
        "latency_ms": 812.5,
        "created": 1_700_000_000.0,
        "expires": 1_700_003_600.0,
        "template_checksum": "abcdef123456",
    }
    fields.update(kw)
    return CacheEntry(**fields)  # type: ignore[arg-type]


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    with Recorder(path) as rec:
        rec.write("k1", entry(), TPL)
        rec.write("k2", entry("plain text", template_checksum=None, tier="premium"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {
        "key": "k1",
        "tier": "economy",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "template": {"name": "extraction", "version": "1.2.0", "checksum": "abcdef123456"},
        "content": '{"company": "Apple"}',
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
        "cost_usd": 0.00042,
        "latency_ms": 812.5,
        "created": 1_700_000_000.0,
    }
    assert lines[1]["template"] is None and lines[1]["tier"] == "premium"

    store = ReplayStore(path)
    got = store.get("k1")
    assert got == entry(expires=None)  # a recording never expires
    assert store.get("k2") == entry(
        "plain text", template_checksum=None, tier="premium", expires=None
    )
    assert store.get("missing") is None
    assert len(store) == 2 and "k1" in store and store.keys() == ["k1", "k2"]


def test_checksum_without_template_ref_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with Recorder(path) as rec:
        rec.write("k", entry())
    line = json.loads(path.read_text())
    assert line["template"] == {"name": None, "version": None, "checksum": "abcdef123456"}
    assert ReplayStore(path).get("k").template_checksum == "abcdef123456"  # type: ignore[union-attr]


def test_lines_are_flushed_as_they_arrive(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    rec = Recorder(path)
    rec.write("a", entry("first"))
    assert json.loads(path.read_text())["content"] == "first"  # before close
    rec.write("b", entry("second"))
    assert len(path.read_text().splitlines()) == 2
    rec.close()
    rec.close()  # idempotent
    with pytest.raises(UsageError, match="already closed"):
        rec.write("c", entry())


def test_rerecording_updates_and_compacts(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with Recorder(path) as rec:
        rec.write("a", entry("old a"))
        rec.write("b", entry("b"))
    with Recorder(path) as rec:
        rec.write("a", entry("new a"))
        rec.write("c", entry("c"))
        rec.write("c", entry("c again"))  # e.g. --repeat with cache hits
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["key"], x["content"]) for x in lines] == [
        ("a", "new a"),
        ("b", "b"),
        ("c", "c again"),
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".r.jsonl*"))  # no temp file left behind


def test_last_line_wins_on_replay(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"key": "a", "content": "one"}\n\n{"key": "a", "content": "two"}\n', encoding="utf-8"
    )
    assert ReplayStore(path).get("a").content == "two"  # type: ignore[union-attr]


def test_hand_written_minimal_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "k", "content": "hi", "tier": "economy"}\n', encoding="utf-8")
    got = ReplayStore(path).get("k")
    assert got is not None
    assert (got.content, got.tier, got.model_used, got.usage, got.cost_usd) == (
        "hi",
        "economy",
        "",
        Usage(),
        0.0,
    )


def test_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = Recorder(path)

    def work(n: int) -> None:
        for i in range(50):
            rec.write(f"{n}-{i}", entry("x" * 5000))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    store = ReplayStore(path)
    assert len(store) == 400 and rec.count == 400


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ('{"key": "a", "content": "x"}\nnot json\n', 2, "Expecting value"),
        ("[1, 2]\n", 1, "expected a JSON object"),
        ('{"content": "x"}\n', 1, "'key'"),
        ('{"key": "a"}\n', 1, "'content'"),
        ('{"key": "a", "content": "x", "usage": [1]}\n', 1, "'usage'"),
        ('{"key": "a", "content": "x", "usage": {"prompt_tokens": "many"}}\n', 1, "'usage'"),
        ('{"key": "a", "content": "x", "cost_usd": "free"}\n', 1, "'cost_usd'"),
        ('{"key": "a", "content": "x", "latency_ms": true}\n', 1, "'latency_ms'"),
        ('{"key": "a", "content": "x", "template": "t"}\n', 1, "'template'"),
        ('{"key": "a", "content": "x", "tier": 3}\n', 1, "'tier'"),
        ('\n\n{"key": "a", "content": "\xff"}\n', 3, ""),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, text: str, line: int, why: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    store = ReplayStore(path)  # reading is lazy
    with pytest.raises(UsageError) as info:
        store.get("a")
    message = str(info.value)
    assert f"bad.jsonl:{line}: not a valid recording line" in message
    assert why in message
    assert "--record" in (info.value.hint or "")
    with pytest.raises(UsageError):
        store.load()  # still failing, never half-loaded


def test_missing_replay_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        ReplayStore(tmp_path / "nope.jsonl")


def test_unwritable_record_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot write"):
        Recorder(tmp_path / "missing-dir" / "r.jsonl")
