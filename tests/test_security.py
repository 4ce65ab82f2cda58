"""Redaction round trips through the real server: nothing sensitive leaves, the user sees it all."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_openai import FakeOpenAI
from tests.helpers import Completed, Isolated, cli, run_aicli

PEM = """-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun
VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK
LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo
-----END RSA PRIVATE KEY-----"""
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
# name -> (kind, value); each is one whole detection of that kind
SAMPLES: dict[str, tuple[str, str]] = {
    "email": ("email", "jane.doe@example.com"),
    "phone": ("phone", "+44 20 7946 0958"),
    "card": ("card", "4111 1111 1111 1111"),  # Luhn-valid Visa test number
    "iban": ("iban", "DE89 3704 0044 0532 0130 00"),
    "openai": ("secret", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zQ7"),
    "github": ("secret", "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"),
    "jwt": ("secret", JWT),
    "pem": ("secret", PEM),
}
ORIGINALS = {name: value for name, (_, value) in SAMPLES.items()}
PROMPT = f"""Customer record, please summarise:
- e-mail: {ORIGINALS["email"]}
- phone: {ORIGINALS["phone"]}
- card: {ORIGINALS["card"]}
- IBAN: {ORIGINALS["iban"]}
- openai key {ORIGINALS["openai"]} and github token {ORIGINALS["github"]}
- session {ORIGINALS["jwt"]}
- deploy key:
{ORIGINALS["pem"]}
Write back to {ORIGINALS["email"]} today (order 1234567890123 must stay)."""
# distinct values per kind in PROMPT (the e-mail appears twice but is one value)
EXPECTED_COUNTS = {"email": 1, "phone": 1, "card": 1, "iban": 1, "secret": 4}
PLACEHOLDER = re.compile(r"\[(EMAIL|PHONE|CARD|IBAN|SECRET)_\d+\]")


def _fragments(value: str) -> list[str]:
    """The value and pieces of it that alone would still leak it (compact forms, PEM lines)."""
    pieces = [value]
    if re.fullmatch(r"[\d ]+", value) or (value[:2].isalpha() and value[2:4].isdigit()):
        pieces.append(value.replace(" ", ""))  # card / IBAN written without spaces
    if "PRIVATE KEY" in value:
        pieces += [line for line in value.splitlines() if "-----" not in line]
    if value.startswith("eyJ"):
        pieces += value.split(".")[1:]  # payload and signature of the JWT
    return pieces


LEAKS = {name: _fragments(value) for name, value in ORIGINALS.items()}


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _strings(item)


def _request_text(request: dict[str, Any]) -> str:
    """Everything the server saw of one request: the raw JSON and every decoded string in it."""
    body = request["body"]
    return "\n".join([json.dumps(body), json.dumps(body, ensure_ascii=False), *_strings(body)])


def _leaked(text: str, names: Any = None) -> list[str]:
    return [name for name in (names or LEAKS) if any(f in text for f in LEAKS[name])]


def assert_server_saw_no_originals(server: FakeOpenAI, expect_requests: int = 1) -> str:
    requests = server.requests
    assert len(requests) == expect_requests, requests
    texts = [_request_text(r) for r in requests]
    for text in texts:
        assert not _leaked(text), f"originals reached the server: {_leaked(text)}"
        found = {m.group(1).lower() for m in PLACEHOLDER.finditer(text)}
        assert found == set(EXPECTED_COUNTS), f"placeholders sent: {found}"
        assert "[EMAIL_1]" in text and "1234567890123" in text  # order numbers survive
    return texts[0]


def _last_user_message(server: FakeOpenAI) -> str:
    messages = server.requests[-1]["messages"]
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def _all_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath) / name


def _grep_bytes(root: Path, needles: list[str]) -> list[str]:
    """Files under root holding any needle as UTF-8 or as it looks escaped inside JSON."""
    forms = {n.encode() for n in needles} | {json.dumps(n)[1:-1].encode() for n in needles}
    return [
        f"{path}: {form[:40]!r}"
        for path in _all_files(root)
        for form in forms
        if form in path.read_bytes()
    ]


def _generate(*args: str, fresh_process: bool = False) -> Completed:
    result = (run_aicli if fresh_process else cli)("generate", *args)
    assert result.exit_code == 0, result
    return result


# ---- the round trip --------------------------------------------------------------------------


def test_corpus_is_detected_one_value_each() -> None:
    """Guards the fixtures themselves: each sample is one whole detection of its kind."""
    from aicli.redact import detect

    for name, (kind, value) in SAMPLES.items():
        found = detect(f"see {value} here")
        assert [(d.kind, d.value) for d in found] == [(kind, value)], name


def test_plain_generate_sends_placeholders_and_shows_originals(server, make_config) -> None:
    make_config()
    result = _generate(PROMPT)
    sent = assert_server_saw_no_originals(server)
    assert "[SECRET_1]" in sent and "[PHONE_1]" in sent
    assert result.stdout == PROMPT + "\n"  # the server echoes; every original is back
    assert not _leaked(result.stderr)


def test_same_value_same_placeholder_within_a_request(server, make_config) -> None:
    make_config()
    _generate(PROMPT)
    assert _last_user_message(server).count("[EMAIL_1]") == 2


def test_system_prompt_is_redacted_too(server, make_config) -> None:
    make_config()
    result = _generate("-s", f"Reply to {ORIGINALS['email']} only.", "Who do I reply to?")
    text = _request_text(server.requests[0])
    assert ORIGINALS["email"] not in text and "[EMAIL_1]" in text
    assert result.exit_code == 0


def test_json_output_content_is_restored(server, make_config) -> None:
    make_config()
    result = _generate("--json", PROMPT)
    assert_server_saw_no_originals(server)
    data = json.loads(result.stdout)
    assert data["content"] == PROMPT
    assert not _leaked(json.dumps({k: v for k, v in data.items() if k != "content"}))


def test_verbose_counts_each_kind_never_the_values(server, make_config) -> None:
    make_config()
    result = _generate("-v", PROMPT)
    assert_server_saw_no_originals(server)
    assert result.stdout == PROMPT + "\n"
    assert "redact" in result.stderr.lower(), result.stderr
    for kind, n in EXPECTED_COUNTS.items():
        said = rf"\b{n} {kind}s?\b|\b{kind}s?\s*[=:]\s*{n}\b"
        assert re.search(said, result.stderr, re.IGNORECASE), f"{kind}: {result.stderr}"
    assert not _leaked(result.stderr), result.stderr


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5])
def test_stream_restores_placeholders_split_across_chunks(server, make_config, chunk_size) -> None:
    make_config()
    server.chunk_size = chunk_size
    result = _generate("--stream", PROMPT)
    assert server.requests[0]["stream"] is True
    assert_server_saw_no_originals(server)
    assert result.stdout == PROMPT + "\n"


def test_stream_leaves_unknown_and_partial_placeholders_alone(server, make_config) -> None:
    """Bracketed text that only looks like a placeholder must come out exactly as the model sent."""
    make_config()
    server.chunk_size = 2
    answer = "see [EMAIL_1] and [EMAIL_9] and [EMAIL_ and [SECRET_12x] and a trailing [PHO"
    server.set_answer("*", answer)
    result = _generate("--stream", f"mail {ORIGINALS['email']}")
    expected = answer.replace("[EMAIL_1]", ORIGINALS["email"])
    assert result.stdout == expected + "\n"


def test_placeholder_lookalike_in_the_prompt_is_not_replaced(server, make_config) -> None:
    """A user who writes `[EMAIL_1]` literally must get `[EMAIL_1]` back, not someone's address."""
    make_config()
    prompt = f"template slot [EMAIL_1] and real address {ORIGINALS['email']}"
    result = _generate(prompt)
    assert result.stdout == prompt + "\n"
    assert ORIGINALS["email"] not in _request_text(server.requests[0])


# ---- turning it off ----------------------------------------------------------------------------


def test_no_redact_sends_the_originals(server, make_config) -> None:
    make_config()
    result = _generate("--no-redact", PROMPT)
    assert _last_user_message(server) == PROMPT
    assert not PLACEHOLDER.search(_request_text(server.requests[0]))
    assert result.stdout == PROMPT + "\n"


def test_config_redact_disabled_sends_the_originals(server, make_config) -> None:
    make_config(redact={"enabled": False})
    _generate(PROMPT)
    assert _last_user_message(server) == PROMPT


def test_config_kinds_email_only(server, make_config) -> None:
    make_config(redact={"kinds": ["email"]})
    result = _generate("-v", PROMPT)
    sent = _last_user_message(server)
    assert ORIGINALS["email"] not in sent and sent.count("[EMAIL_1]") == 2
    assert sent == PROMPT.replace(ORIGINALS["email"], "[EMAIL_1]")  # everything else untouched
    assert result.stdout == PROMPT + "\n"


def test_unknown_redaction_kind_is_a_config_error(cli, make_config) -> None:
    make_config(redact={"kinds": ["email", "passport"]})
    result = cli("generate", "hi")
    assert result.exit_code == 2, result
    assert "passport" in result.stderr and "redact" in result.stderr


def test_local_provider_is_not_redacted(server, make_config) -> None:
    make_config(providers={"fake": {"local": True}})
    result = _generate(PROMPT)
    assert _last_user_message(server) == PROMPT
    assert result.stdout == PROMPT + "\n"


def test_fallback_to_a_remote_tier_is_redacted_even_when_the_first_is_local(
    server, make_config
) -> None:
    make_config(
        providers={"near": {"base_url": server.base_url, "local": True}},
        tiers={"standard": {"provider": "near"}},
    )
    server.script("standard-model", ["500"])
    result = _generate(PROMPT)
    first, second = server.requests
    assert first["model"] == "standard-model" and second["model"] == "economy-model"
    assert not _leaked(_request_text(second)), "the fallback to a remote tier got originals"
    assert result.stdout == PROMPT + "\n"


# ---- the cache -------------------------------------------------------------------------------


def test_cache_stores_the_redacted_answer_only(server, make_config, isolate: Isolated) -> None:
    make_config()
    result = _generate(PROMPT, fresh_process=True)
    assert result.stdout == PROMPT + "\n"
    cache_dir = isolate.cache_dir
    assert cache_dir.is_dir() and any(_all_files(cache_dir)), "nothing was cached"
    leaks = _grep_bytes(cache_dir, [f for name in LEAKS for f in LEAKS[name]])
    assert not leaks, f"originals on disk in the cache: {leaks}"
    # the search is meaningful: the stored answer is there, in its redacted form
    assert _grep_bytes(cache_dir, ["[EMAIL_1]"]), "the cached answer is not stored as text"


def test_cache_hit_restores_the_originals(server, make_config, isolate: Isolated) -> None:
    make_config()
    _generate(PROMPT, fresh_process=True)
    again = _generate("--json", PROMPT, fresh_process=True)
    assert len(server.requests) == 1  # the second answer came from the cache
    data = json.loads(again.stdout)
    assert data["cached"] is True and data["content"] == PROMPT
    plain = _generate(PROMPT, fresh_process=True)
    assert plain.stdout == PROMPT + "\n" and len(server.requests) == 1
    assert not _grep_bytes(isolate.cache_dir, [ORIGINALS["email"], ORIGINALS["openai"]])


def test_cache_hit_restores_this_requests_values_not_the_first_ones(server, make_config) -> None:
    """The key is computed on the redacted prompt: another address shares the cached answer,
    and must see its own address back, never the first caller's."""
    make_config()
    first = _generate("Please write to alice@example.org now.", fresh_process=True)
    assert first.stdout == "Please write to alice@example.org now.\n"
    second = _generate("Please write to bob@example.net now.", fresh_process=True)
    assert second.stdout == "Please write to bob@example.net now.\n"
    assert "alice" not in second.output
    assert len(server.requests) == 1, "the cache key should be computed on the redacted prompt"


def test_streamed_cache_hit_is_restored(server, make_config) -> None:
    make_config()
    _generate(PROMPT, fresh_process=True)
    hit = _generate("--stream", PROMPT, fresh_process=True)
    assert hit.stdout == PROMPT + "\n" and len(server.requests) == 1


def test_no_redact_and_redacted_requests_do_not_share_a_cache_entry(server, make_config) -> None:
    make_config()
    _generate(PROMPT)
    _generate("--no-redact", PROMPT)
    assert len(server.requests) == 2


# ---- test-prompts ----------------------------------------------------------------------------


def _has_option(command: tuple[str, ...], option: str) -> bool:
    result = cli(*command, "--help")
    return result.exit_code == 0 and option in result.stdout


def _write_suite(path: Path) -> Path:
    suite = {
        "suite": "redaction-roundtrip",
        "prompt": "Contact {{ email }} or {{ phone }} about card {{ card }}.",
        "tier": "standard",
        "cases": [
            {
                "name": "restored-before-assertions",
                "vars": {
                    "email": ORIGINALS["email"],
                    "phone": ORIGINALS["phone"],
                    "card": ORIGINALS["card"],
                },
                "assert": [
                    {"type": "contains", "value": ORIGINALS["email"]},
                    {"type": "contains", "value": ORIGINALS["card"]},
                    {"type": "not-contains", "value": "[EMAIL_"},
                ],
            }
        ],
    }
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


def test_test_prompts_restores_before_assertions(server, make_config, isolate: Isolated) -> None:
    if not _has_option(("test-prompts",), "--record"):
        pytest.skip("aicli test-prompts with --record is not implemented yet")
    make_config()
    suite = _write_suite(isolate.work / "roundtrip.test.yaml")
    record = isolate.work / "answers.jsonl"
    result = run_aicli("test-prompts", str(suite), "--record", str(record))
    assert result.exit_code == 0, result
    assert result.stdout.rstrip().splitlines()[-1].startswith("1 passed, 0 failed"), result
    for request in server.requests:
        assert not _leaked(_request_text(request), ["email", "phone", "card"])
    assert record.is_file()
    leaks = _grep_bytes(record, LEAKS["email"] + LEAKS["phone"] + LEAKS["card"])
    assert not leaks, f"the recording holds originals: {leaks}"
    # the recording replays offline, and the answer is restored again before the assertions
    server.reset()
    replay = run_aicli("test-prompts", str(suite), "--replay", str(record))
    assert replay.exit_code == 0, replay
    assert server.requests == []
