"""Tests for aicli.redact: detection quality on a corpus, placeholders, restore and streaming."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from aicli.redact import KINDS, Redactor, StreamRestorer, detect
from aicli.redact.patterns import Detection

CORPUS_PATH = Path(__file__).parent / "data" / "redaction_corpus.yaml"
MIN_PRECISION = 1.0
MIN_RECALL = 1.0


def _load_corpus() -> list[tuple[str, dict[str, list[str]]]]:
    """Every corpus sentence with the values it holds, per kind (empty for near misses)."""
    data: dict[str, Any] = yaml.safe_load(CORPUS_PATH.read_text(encoding="utf-8"))
    cases: list[tuple[str, dict[str, list[str]]]] = []
    for kind in KINDS:
        for item in data[kind]["positives"]:
            cases.append((item["text"], {kind: item["values"]}))
        cases += [(text, {}) for text in data[kind]["near_misses"]]
    cases += [(item["text"], item["expect"]) for item in data["mixed"]]
    return cases


CORPUS = _load_corpus()


def test_corpus_has_enough_cases_per_kind() -> None:
    data = yaml.safe_load(CORPUS_PATH.read_text(encoding="utf-8"))
    for kind in KINDS:
        assert len(data[kind]["positives"]) >= 10, kind
        assert len(data[kind]["near_misses"]) >= 10, kind


def _score() -> tuple[dict[str, dict[str, float]], list[str]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    problems: list[str] = []
    for text, expect in CORPUS:
        wanted = Counter((kind, value) for kind, values in expect.items() for value in values)
        found = Counter((d.kind, d.value) for d in detect(text))
        for kind, _value in (found & wanted).elements():
            tp[kind] += 1
        for kind, value in (found - wanted).elements():
            fp[kind] += 1
            problems.append(f"false {kind} {value!r} in {text!r}")
        for kind, value in (wanted - found).elements():
            fn[kind] += 1
            problems.append(f"missed {kind} {value!r} in {text!r}")
    scores = {}
    for kind in KINDS:
        precision = tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else 1.0
        recall = tp[kind] / (tp[kind] + fn[kind]) if tp[kind] + fn[kind] else 1.0
        scores[kind] = {"precision": precision, "recall": recall, "tp": tp[kind]}
    return scores, problems


@pytest.mark.parametrize("kind", KINDS)
def test_precision_and_recall_per_kind(kind: str) -> None:
    scores, problems = _score()
    score = scores[kind]
    print(f"{kind}: precision={score['precision']:.3f} recall={score['recall']:.3f}")
    assert score["tp"] >= 10
    assert score["precision"] >= MIN_PRECISION, "\n".join(p for p in problems if kind in p)
    assert score["recall"] >= MIN_RECALL, "\n".join(p for p in problems if kind in p)


@pytest.mark.parametrize(("text", "expect"), CORPUS, ids=range(len(CORPUS)))
def test_round_trip_and_no_value_left(text: str, expect: dict[str, list[str]]) -> None:
    redactor = Redactor()
    redacted = redactor.redact(text)
    for value in [v for values in expect.values() for v in values] + [
        d.value for d in detect(text)
    ]:
        assert value not in redacted
    assert redactor.restore(redacted) == text
    assert redactor.redact(redacted) == redacted  # placeholders are never redacted again


def test_near_misses_are_left_untouched() -> None:
    for text, expect in CORPUS:
        if not expect:
            redactor = Redactor()
            assert redactor.redact(text) == text
            assert redactor.mapping_is_empty and redactor.counts == {}


def test_placeholders_are_stable_and_numbered_per_kind() -> None:
    redactor = Redactor()
    first = redactor.redact("Mail a@example.com, then b@example.com, then a@example.com again.")
    assert first == "Mail [EMAIL_1], then [EMAIL_2], then [EMAIL_1] again."
    # One Redactor is one request: later calls reuse the numbers.
    assert redactor.redact("a@example.com or +44 20 7946 0958") == "[EMAIL_1] or [PHONE_1]"
    assert redactor.redact("c@example.com") == "[EMAIL_3]"
    assert redactor.counts == {"email": 3, "phone": 1}
    assert not redactor.mapping_is_empty


def test_an_empty_redactor_is_still_truthy() -> None:
    # `if redactor:` means "redaction is on", never "something was found" (that was a real bug).
    assert Redactor() and Redactor().mapping_is_empty


def test_redact_messages_returns_new_list() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "My mail is a@example.com", "name": "jane"},
    ]
    redactor = Redactor()
    out = redactor.redact_messages(messages)
    assert out == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "My mail is [EMAIL_1]", "name": "jane"},
    ]
    assert out is not messages and out[1] is not messages[1]
    assert messages[1]["content"] == "My mail is a@example.com"


def test_a_hidden_value_is_hidden_everywhere_in_the_request() -> None:
    redactor = Redactor()
    out = redactor.redact_messages(
        [
            {"role": "user", "content": "My password is Tr0ub4dor&3, is it strong?"},
            {"role": "user", "content": "config:\n  password: Tr0ub4dor&3\n"},
        ]
    )
    assert [m["content"] for m in out] == [
        "My password is [SECRET_1], is it strong?",
        "config:\n  password: [SECRET_1]\n",
    ]
    assert redactor.redact("again Tr0ub4dor&3") == "again [SECRET_1]"
    assert redactor.counts == {"secret": 1}


def test_redact_messages_scans_each_text_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from aicli.redact import placeholders

    scanned: list[str] = []

    def counting(text: str, kinds: object = None) -> list[Detection]:
        scanned.append(text)
        return detect(text, kinds)  # type: ignore[arg-type]

    monkeypatch.setattr(placeholders, "detect", counting)
    messages = [
        {"role": "system", "content": "Mail a@example.com or b@example.com"},
        {"role": "user", "content": "Is a@example.com right? password=hunter22"},
        {"role": "user", "content": ""},
    ]
    out = Redactor().redact_messages(messages)
    assert sorted(scanned) == sorted(m["content"] for m in messages if m["content"])
    assert [m["content"] for m in out] == [
        "Mail [EMAIL_1] or [EMAIL_2]",
        "Is [EMAIL_1] right? password=[SECRET_1]",
        "",
    ]


def test_kinds_filter() -> None:
    text = "a@example.com, +44 20 7946 0958, 4111 1111 1111 1111, password=hunter22"
    only_email = Redactor(kinds=["email"])
    assert only_email.redact(text) == (
        "[EMAIL_1], +44 20 7946 0958, 4111 1111 1111 1111, password=hunter22"
    )
    two = Redactor(kinds=("card", "secret"))
    assert two.redact(text) == "a@example.com, +44 20 7946 0958, [CARD_1], password=[SECRET_1]"
    assert Redactor(kinds=[]).redact(text) == text
    assert Redactor(kinds="phone").redact(text).count("[PHONE_1]") == 1
    assert {d.kind for d in detect(text, ["iban"])} == set()


def test_unknown_kind_is_a_value_error_listing_valid_kinds() -> None:
    with pytest.raises(ValueError, match="unknown redaction kind 'ssn'") as info:
        Redactor(kinds=["email", "ssn"])
    for kind in KINDS:
        assert kind in str(info.value)


def test_counts_and_repr_never_hold_values() -> None:
    text = "ops@example.com 4111 1111 1111 1111 password=Sup3rSecret! +1-202-555-0143"
    redactor = Redactor()
    redactor.redact(text)
    assert redactor.counts == {"email": 1, "phone": 1, "card": 1, "secret": 1}
    assert set(redactor.counts) <= set(KINDS)
    assert all(isinstance(v, int) for v in redactor.counts.values())
    for value in ("ops@example.com", "4111", "Sup3rSecret!", "555-0143"):
        assert value not in repr(redactor.counts)
        assert value not in repr(redactor)


def test_restore_when_the_model_rewrites_around_placeholders() -> None:
    redactor = Redactor()
    emails = [f"user{i}@example.com" for i in range(1, 13)]
    redacted = redactor.redact(" ".join(emails) + " call +49 30 901820")
    assert "[EMAIL_10]" in redacted and "[EMAIL_1]" in redacted
    answer = (
        "Dear [EMAIL_1],\nI wrote to [EMAIL_10] and [EMAIL_1] ([EMAIL_12]).\n"
        "Phone:[PHONE_1]![PHONE_1][EMAIL_2]"
    )
    assert redactor.restore(answer) == (
        "Dear user1@example.com,\nI wrote to user10@example.com and user1@example.com "
        "(user12@example.com).\nPhone:+49 30 901820!+49 30 901820user2@example.com"
    )
    # Placeholders this Redactor never issued stay as they are.
    unknown = "[EMAIL_13] [EMAIL_0] [PHONE_2] [CARD_1] [FOO_1] [EMAIL_1 ] [email_1] [[EMAIL_1]]"
    assert redactor.restore(unknown) == (
        "[EMAIL_13] [EMAIL_0] [PHONE_2] [CARD_1] [FOO_1] [EMAIL_1 ] [email_1] [user1@example.com]"
    )


def test_placeholder_lookalikes_in_the_input_are_never_issued() -> None:
    redactor = Redactor()
    messages = [
        {"role": "user", "content": "Template: Dear [EMAIL_1], ..."},
        {"role": "user", "content": "Fill it for jane@example.com"},
    ]
    out = redactor.redact_messages(messages)
    assert out[1]["content"] == "Fill it for [EMAIL_2]"
    assert redactor.restore("Dear [EMAIL_1] -> [EMAIL_2]") == "Dear [EMAIL_1] -> jane@example.com"


def _stream(restorer: StreamRestorer, chunks: list[str], final: str) -> str:
    emitted = ""
    for chunk in chunks:
        emitted += restorer.feed(chunk)
        assert final.startswith(emitted), (chunks, emitted)
    emitted += restorer.flush()
    return emitted


def _streaming_case() -> tuple[Redactor, str, str]:
    redactor = Redactor()
    values = [f"p{i}@example.com" for i in range(1, 12)]
    redactor.redact(" ".join(values) + " +44 20 7946 0958 sk_live_flvJfupxqZKm4bV3AyAVHnyr")
    answer = (
        "[EMAIL_1] wrote: [EMAIL_10][EMAIL_11]; call [PHONE_1] [note] [EMAIL_x] [SECRET_1]"
        "[ [EMAIL_99] a[b [PHONE_1][EMAIL_1"
    )
    return redactor, answer, redactor.restore(answer)


def test_stream_restorer_two_chunks_at_every_split_point() -> None:
    redactor, answer, final = _streaming_case()
    assert final.startswith("p1@example.com wrote: p10@example.comp11@example.com; call +44")
    for cut in range(len(answer) + 1):
        assert _stream(redactor.stream_restorer(), [answer[:cut], answer[cut:]], final) == final


def test_stream_restorer_char_by_char_and_random_chunks() -> None:
    redactor, answer, final = _streaming_case()
    assert _stream(redactor.stream_restorer(), list(answer), final) == final
    rng = random.Random(6)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(answer)), rng.randint(1, 12)))
        chunks = [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
        assert _stream(redactor.stream_restorer(), chunks, final) == final


def test_stream_restorer_holds_only_possible_placeholders() -> None:
    redactor = Redactor()
    redactor.redact("x@example.com")
    restorer = redactor.stream_restorer()
    assert restorer.feed("Hi [EMA") == "Hi "
    assert restorer.feed("IL_1") == ""
    assert restorer.feed("], see [1] and [EMAIL_") == "x@example.com, see [1] and "
    assert restorer.feed("2x") == "[EMAIL_2x"
    assert restorer.feed(" [") == " "
    assert restorer.flush() == "["


def test_secret_patterns_do_not_eat_each_other() -> None:
    pem = (
        "-----BEGIN EC PRIVATE KEY-----\n"
        "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n"
        "-----END EC PRIVATE KEY-----"
    )
    text = f"key:\n{pem}\nmail ops@example.com"
    found = detect(text)
    assert [(d.kind, d.value) for d in found] == [("secret", pem), ("email", "ops@example.com")]
    jwt = (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
        ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    )
    assert [d.value for d in detect(f"token={jwt}")] == [jwt]


@pytest.mark.parametrize(
    "text",
    [
        "a" * 200_000,
        "1 " * 100_000,
        "0" * 200_000,
        "+1" + " 2" * 50_000,
        "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 200_000,
        "x@" * 50_000,
        "password=" * 20_000,
        "DE89 " * 40_000,
        "-----BEGIN PRIVATE KEY-----\n" * 10_000,
        "sk-" * 100_000,
        "1-" * 100_000,
        "a.b" * 100_000,
        "xoxb-1-" * 50_000,
        "http://a:" * 50_000,
        "token=a&" * 50_000,
        ("Mail a@example.com, call 202-555-0143, pay 4111 1111 1111 1111. " * 5000),
    ],
)
def test_large_and_pathological_inputs_are_fast(text: str) -> None:
    started = time.perf_counter()
    Redactor().redact(text)
    assert time.perf_counter() - started < 5


def test_import_is_light_and_patterns_compile_lazily() -> None:
    code = (
        "import sys, aicli.redact as r, aicli.redact.patterns as p\n"
        "assert p._compiled is None\n"
        "heavy = {'yaml', 'openai', 'httpx2', 'jsonschema', 'pydantic'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "r.Redactor().redact('a@example.com')\n"
        "assert p._compiled is not None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


AUDIT_SECRETS = [
    "sk-1234567890abcdef1234567890abcdef",
    "sk-proj-abc123def456ghi789jkl012mno345pqr678",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
    "4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
    "TOKENVALUEALLUPPER1234567",
]
AUDIT_PROMPTS = [
    f"key {AUDIT_SECRETS[0]}",
    AUDIT_SECRETS[1],
    AUDIT_SECRETS[2],
    f"Authorization: Bearer {AUDIT_SECRETS[3]}",
    f"Bearer {AUDIT_SECRETS[4]}",
]


@pytest.mark.parametrize(("prompt", "secret"), list(zip(AUDIT_PROMPTS, AUDIT_SECRETS, strict=True)))
def test_audit_secret_shapes_never_reach_a_remote_provider(
    prompt: str, secret: str, cli: Any, server: Any, make_config: Any
) -> None:
    # A black-box audit found these hex / single-case / placeholder-style keys sent in clear.
    make_config()
    done = cli("generate", "-v", "--no-cache", prompt)
    assert done.exit_code == 0, done
    assert "redacted: 1 secret" in done.stderr
    assert secret in done.stdout  # the echoed answer gets the original back
    assert len(server.requests) == 1
    sent = str(server.requests[0]["body"])
    assert secret not in sent and "[SECRET_1]" in sent


def test_audit_secret_counted_for_the_echo_tier(cli: Any) -> None:
    done = cli("generate", "-t", "echo", "-v", "--no-cache", f"key {AUDIT_SECRETS[0]}")
    assert done.exit_code == 0, done
    assert "redacted: 1 secret" in done.stderr


# --- the literal gates in front of the patterns -----------------------------------------------


def _gates() -> list[tuple[str, Any, Any]]:
    """(name, pattern, the gate detect() checks before running it)."""
    from aicli.redact import patterns as P

    p = P.compiled_patterns()

    def folded(text: str) -> str | None:
        return None if any(c in text for c in P._FOLDS_TO_ASCII) else text.lower()

    def digits(text: str) -> bool:
        return bool(p.two_digits.search(text))

    gates: list[tuple[str, Any, Any]] = [
        ("jwt", p.jwt, lambda t: "eyJ" in t),
        ("bearer", p.bearer, lambda t: P._may_hold(folded(t), ("bearer",))),
        ("basic", p.basic_auth, lambda t: P._may_hold(folded(t), ("authorization",))),
        ("url", p.url_password, lambda t: "://" in t),
        ("assign", p.assignment, lambda t: P._may_hold(folded(t), P._ASSIGNMENT_WORDS)),
        ("email", p.email, lambda t: "@" in t),
        ("card", p.card, digits),
        ("iban", p.iban, digits),
        ("nanp", p.phone_nanp, digits),
        ("national", p.phone_national, digits),
        ("intl", p.phone_intl, lambda t: "+" in t or "00" in t),
    ]
    for i, (pattern, _, literals) in enumerate(p.tokens):
        gates.append((f"token{i}", pattern, lambda t, lits=literals: any(x in t for x in lits)))
    return gates


GATES = _gates()
# Corpus sentences, each also with its letters swapped for what (?i) folds to them.
_ODD = str.maketrans({"i": "\u0130", "s": "\u017f", "k": "\u212a", "I": "\u0131"})
GATED_TEXTS = [t for text, _ in CORPUS for t in (text, text.translate(_ODD), text.upper())]


@pytest.mark.parametrize(("name", "pattern", "gate"), GATES, ids=[g[0] for g in GATES])
def test_a_pattern_never_matches_a_text_its_gate_skips(name: str, pattern: Any, gate: Any) -> None:
    matched = [t for t in GATED_TEXTS if pattern.search(t)]
    assert matched or name.startswith("token"), f"{name}: the corpus never exercises it"
    assert [t for t in matched if not gate(t)] == []


@given(st.text(alphabet="aeiksptorybwhnzAKIS0123456789 +-_:/@=\"'\u0130\u0131\u017f\u212a"))
@settings(max_examples=300, deadline=None)
def test_the_gates_hold_on_generated_text(text: str) -> None:
    for name, pattern, gate in GATES:
        assert not pattern.search(text) or gate(text), name
