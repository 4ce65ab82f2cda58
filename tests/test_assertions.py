"""Assertion types (promptfoo semantics), the not- prefix, fenced JSON, weights, llm-rubric."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from aicli.suites.assertions import (
    ASSERTION_FAILED,
    INLINE_SCAN_CHARS,
    INVALID_JSON,
    REGISTRY,
    STRUCTURE_MISMATCH,
    AssertionResult,
    Observation,
    Spec,
    build_rubric_prompt,
    case_verdict,
    check_one,
    evaluate,
    parse_grader_answer,
    primary_failure,
)
from aicli.suites.model import ASSERTION_TYPES, Assertion
from aicli.suites.parse_asserts import parse_assertion

APPLE = '{"company": "Apple Inc.", "location": "Cupertino", "employees": 164000}'
SCHEMA = {
    "type": "object",
    "required": ["company", "location"],
    "properties": {"company": {"type": "string"}, "location": {"type": "string"}},
}


def make(type_: str, value: Any = None, **kw: Any) -> Assertion:
    raw: dict[str, Any] = {"type": type_, **kw}
    if value is not None:
        raw["value"] = value
    return parse_assertion(Path("t.test.yaml"), raw, 1, "case", None)


def run(a: Assertion, output: str, **obs: Any) -> AssertionResult:
    return check_one(a, Observation(output=output, **obs))


# (type, value, extra keys, output, passes, failure kind)
TABLE: list[tuple[str, Any, dict[str, Any], str, bool, str | None]] = [
    ("equals", "hello", {}, "hello", True, None),
    ("equals", "hello", {}, "hello ", False, ASSERTION_FAILED),
    ("equals", 42, {}, "42", True, None),
    ("equals", {"a": 1, "b": [1, 2]}, {}, '{"b": [1, 2], "a": 1}', True, None),
    ("equals", {"a": 1}, {}, '```json\n{"a": 1.0}\n```', True, None),
    ("equals", {"a": 1}, {}, '{"a": true}', False, ASSERTION_FAILED),
    ("equals", {"a": 1}, {}, "a is 1", False, INVALID_JSON),
    ("contains", "Cupertino", {}, "based in Cupertino.", True, None),
    ("contains", "cupertino", {}, "based in Cupertino.", False, ASSERTION_FAILED),
    ("icontains", "cupertino", {}, "BASED IN CUPERTINO", True, None),
    ("icontains", "paris", {}, "based in Cupertino", False, ASSERTION_FAILED),
    ("contains-any", ["Paris", "Apple"], {}, "Apple Inc.", True, None),
    ("contains-any", ["Paris", "London"], {}, "Apple Inc.", False, ASSERTION_FAILED),
    ("contains-any", "Paris, Apple", {}, "Apple Inc.", True, None),  # promptfoo's CSV form
    ("contains-all", ["Apple", "Cupertino"], {}, "Apple, Cupertino", True, None),
    ("contains-all", ["Apple", "Paris"], {}, "Apple, Cupertino", False, ASSERTION_FAILED),
    ("contains-all", ["apple"], {}, "Apple", False, ASSERTION_FAILED),  # case-sensitive
    ("icontains-any", ["APPLE", "x"], {}, "apple", True, None),
    ("icontains-any", ["pear", "x"], {}, "apple", False, ASSERTION_FAILED),
    ("icontains-all", ["APPLE", "cupertino"], {}, "Apple in Cupertino", True, None),
    ("icontains-all", ["APPLE", "paris"], {}, "Apple in Cupertino", False, ASSERTION_FAILED),
    ("starts-with", "Hello", {}, "Hello world", True, None),
    ("starts-with", "Hello", {}, " Hello world", False, ASSERTION_FAILED),
    ("regex", r"\d{4}", {}, "founded in 1976", True, None),
    ("regex", r"^\d+$", {}, "12 apples", False, ASSERTION_FAILED),
    ("is-json", None, {}, APPLE, True, None),
    ("is-json", None, {}, f"```json\n{APPLE}\n```", True, None),
    ("is-json", None, {}, "```\n[1, 2]\n```", True, None),
    ("is-json", None, {}, f"Here you go: {APPLE}", False, INVALID_JSON),  # whole output only
    ("is-json", None, {}, f"```json\n{APPLE}\n```\nHope it helps", False, INVALID_JSON),
    ("is-json", SCHEMA, {}, APPLE, True, None),
    ("is-json", SCHEMA, {}, '{"company": 1}', False, STRUCTURE_MISMATCH),
    ("json-schema", SCHEMA, {}, f"```json\n{APPLE}\n```", True, None),
    ("json-schema", SCHEMA, {}, '{"company": "Apple"}', False, STRUCTURE_MISMATCH),
    ("json-schema", SCHEMA, {}, "{company: Apple}", False, INVALID_JSON),
    ("structure", {"company": "string", "employees": "integer"}, {}, APPLE, True, None),
    ("structure", {"company": "string", "ceo": "string"}, {}, APPLE, False, STRUCTURE_MISMATCH),
    ("structure", {"employees": "string"}, {}, APPLE, False, STRUCTURE_MISMATCH),
    ("structure", {"a": "string"}, {}, "[1, 2]", False, STRUCTURE_MISMATCH),
    ("structure", {"a": "string"}, {}, "not json", False, INVALID_JSON),
    ("structure", {"a": ["string", "null"]}, {}, '{"a": null}', True, None),
    ("structure", {"a": "number"}, {}, '{"a": 3}', True, None),
    ("structure", {"a": "integer"}, {}, '{"a": 3.0}', True, None),
    ("structure", {"a": "integer"}, {}, '{"a": 3.5}', False, STRUCTURE_MISMATCH),
    ("structure", {"a": "number"}, {}, '{"a": true}', False, STRUCTURE_MISMATCH),
    ("structure", {"a": "array", "b": "object"}, {}, '{"a": [], "b": {}}', True, None),
    ("structure", {"a": "str", "b": "bool"}, {}, '{"a": "x", "b": false}', True, None),
    ("latency", None, {"threshold": 5000}, "x", True, None),
    ("cost", None, {"threshold": 0.01}, "x", True, None),
]


@pytest.mark.parametrize(("type_", "value", "extra", "output", "passes", "kind"), TABLE)
def test_assertion_table(
    type_: str, value: Any, extra: dict[str, Any], output: str, passes: bool, kind: str | None
) -> None:
    result = run(make(type_, value, **extra), output, latency_ms=120.0, cost_usd=0.001)
    assert result.passed is passes, result.reason
    assert result.kind == kind
    assert result.score == (1.0 if passes else 0.0)
    if not passes:
        assert result.reason.startswith(f"{kind}: {type_}")
        assert "expected" in result.reason and "got" in result.reason


@pytest.mark.parametrize(("type_", "value", "extra", "output", "passes", "kind"), TABLE)
def test_not_prefix_inverts_every_type(
    type_: str, value: Any, extra: dict[str, Any], output: str, passes: bool, kind: str | None
) -> None:
    result = run(make("not-" + type_, value, **extra), output, latency_ms=120.0, cost_usd=0.001)
    assert result.passed is not passes, result.reason
    if passes:  # a negated failure is always "the property held, but should not have"
        assert result.kind == ASSERTION_FAILED
        assert "expected not " in result.reason


@pytest.mark.parametrize(
    ("type_", "threshold", "obs", "passes", "got"),
    [
        ("latency", 5000, {"latency_ms": 4999.0}, True, None),
        ("latency", 5000, {"latency_ms": 5000.0}, True, None),
        ("latency", 5000, {"latency_ms": 6012.4, "cached": True}, False, "6012 ms"),
        ("cost", 0.01, {"cost_usd": 0.0099}, True, None),
        ("cost", 0.01, {"cost_usd": 0.02}, False, "$0.020000"),
    ],
)
def test_latency_and_cost_thresholds(
    type_: str, threshold: float, obs: dict[str, Any], passes: bool, got: str | None
) -> None:
    result = check_one(make(type_, threshold=threshold), Observation(output="x", **obs))
    assert result.passed is passes
    if got:
        assert got in result.reason


def test_reasons_show_expected_and_got() -> None:
    r = run(make("icontains", "cupertino"), "Apple is in Paris")
    assert r.reason == (
        'assertion_failed: icontains "cupertino": expected output containing "cupertino" '
        "(any case), got 'Apple is in Paris'"
    )
    r = run(make("structure", {"company": "string", "ceo": "string"}), APPLE)
    assert "missing key 'ceo'" in r.reason
    r = run(make("not-contains", "error"), "an error occurred")
    assert "expected not output containing" in r.reason and "a match at 3" in r.reason
    r = run(make("contains-all", ["Apple", "Paris", "Rome"]), "Apple")
    assert "missing ['Paris', 'Rome']" in r.reason


def test_registry_covers_every_type_but_the_graded_one() -> None:
    assert set(REGISTRY) == set(ASSERTION_TYPES) - {"llm-rubric"}


# ---- weights and thresholds ----------------------------------------------------------------


def _result(passed: bool, weight: float = 1.0, score: float | None = None) -> AssertionResult:
    a = Assertion("contains", "x", weight=weight)
    return AssertionResult(a, passed, score if score is not None else float(passed), "")


@pytest.mark.parametrize(
    ("results", "threshold", "passed", "score"),
    [
        ([], None, True, 1.0),
        ([_result(True), _result(True)], None, True, 1.0),
        ([_result(True), _result(False)], None, False, 0.5),
        ([_result(True, 3), _result(False, 1)], 0.75, True, 0.75),
        ([_result(True, 3), _result(False, 1)], 0.8, False, 0.75),
        ([_result(True, 1), _result(False, 0)], None, False, 1.0),  # weight 0 still must pass
        ([_result(True, 1), _result(False, 0)], 1.0, True, 1.0),
        ([_result(False, 0), _result(False, 0)], 0.0, True, 0.0),
        ([_result(True, 1, 0.7)], 0.7, True, 0.7),
    ],
)
def test_case_verdict(
    results: list[AssertionResult], threshold: float | None, passed: bool, score: float
) -> None:
    assert case_verdict(results, threshold) == (passed, pytest.approx(score))


def test_primary_failure_prefers_the_most_basic_kind() -> None:
    obs = Observation(output="not json at all")
    results = [
        check_one(make("icontains", "x"), obs),
        check_one(make("structure", {"a": "string"}), obs),
    ]
    assert primary_failure(results) is results[1]
    assert results[1].kind == INVALID_JSON
    assert primary_failure([check_one(make("icontains", "n"), obs)]) is None


# ---- llm-rubric ------------------------------------------------------------------------------


def fake_grader(verdict: tuple[bool, float, str], seen: list[tuple[str, str]] | None = None):
    async def grade(rubric: str, output: str) -> tuple[bool, float, str]:
        if seen is not None:
            seen.append((rubric, output))
        return verdict

    return grade


async def test_llm_rubric_passes_and_shows_the_judges_reason() -> None:
    seen: list[tuple[str, str]] = []
    a = make("llm-rubric", "is polite")
    [r] = await evaluate(
        [a], Observation("Thank you!"), grader=fake_grader((True, 0.9, "kind"), seen)
    )
    assert seen == [("is polite", "Thank you!")]
    assert r.passed and r.score == 0.9 and "kind" in r.reason


@pytest.mark.parametrize(
    ("type_", "threshold", "verdict", "passes"),
    [
        ("llm-rubric", None, (False, 0.9, "rude"), False),
        ("llm-rubric", None, (True, 0.0, "ok"), True),  # promptfoo: pass wins without threshold
        ("llm-rubric", 0.8, (True, 0.7, "meh"), False),
        ("llm-rubric", 0.8, (True, 0.8, "fine"), True),
        ("not-llm-rubric", None, (True, 1.0, "polite"), False),
        ("not-llm-rubric", None, (False, 0.1, "rude"), True),
    ],
)
async def test_llm_rubric_threshold_and_not(
    type_: str, threshold: float | None, verdict: tuple[bool, float, str], passes: bool
) -> None:
    extra = {"threshold": threshold} if threshold is not None else {}
    a = make(type_, "is polite", **extra)
    [r] = await evaluate([a], Observation("x"), grader=fake_grader(verdict))
    assert r.passed is passes
    if not passes:
        assert r.kind == ASSERTION_FAILED and verdict[2] in r.reason


async def test_llm_rubric_without_grader_fails_clearly() -> None:
    [r] = await evaluate([make("llm-rubric", "is polite")], Observation("x"), grader=None)
    assert not r.passed and "no grader" in r.reason


async def test_graders_run_concurrently_and_results_keep_order() -> None:
    in_flight = 0
    peak = 0
    both = asyncio.Event()

    async def grade(rubric: str, output: str) -> tuple[bool, float, str]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 2)
        in_flight -= 1
        return rubric == "one", 1.0, rubric

    asserts = [make("llm-rubric", "one"), make("icontains", "x"), make("llm-rubric", "two")]
    results = await evaluate(asserts, Observation("x"), grader=grade)
    assert peak == 2
    assert [r.assertion.value for r in results] == ["one", "x", "two"]
    assert [r.passed for r in results] == [True, True, False]


def _record_threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[int]]:
    """Wrap every check so it notes the thread it ran on, by assertion type."""
    seen: dict[str, set[int]] = {}
    for name, spec in list(REGISTRY.items()):

        def check(a: Assertion, obs: Observation, _inner: Any = spec.check) -> Any:
            seen.setdefault(a.base_type, set()).add(threading.get_ident())
            return _inner(a, obs)

        monkeypatch.setitem(REGISTRY, name, Spec(check, spec.expect))
    return seen


@pytest.mark.parametrize(
    ("asserts", "output", "on_loop"),
    [
        ([("contains", "w5"), ("not-icontains", "nope"), ("latency", None)], "say w5", True),
        ([("contains-any", ["a", "w5"]), ("equals", "say w5"), ("cost", None)], "say w5", True),
        ([("contains", "w5")], "w5" + "x" * INLINE_SCAN_CHARS, False),  # a long answer
        ([("contains", "w5"), ("regex", "w[0-9]")], "say w5", False),  # any regex: all go
        ([("equals", {"a": 1})], '{"a": 1}', False),  # a JSON equals parses the answer
        ([("is-json", None)], '{"a": 1}', False),
    ],
)
async def test_cheap_checks_run_on_the_loop_and_costly_ones_in_a_thread(
    monkeypatch: pytest.MonkeyPatch, asserts: list[tuple[str, Any]], output: str, on_loop: bool
) -> None:
    seen = _record_threads(monkeypatch)
    made = [
        make(t, v, threshold=1e9) if t in ("latency", "cost") else make(t, v) for t, v in asserts
    ]
    results = await evaluate(made, Observation(output, latency_ms=5.0))
    assert all(r.passed for r in results), [r.reason for r in results]
    threads = set().union(*seen.values())
    assert len(threads) == 1
    assert (threads == {threading.get_ident()}) is on_loop


async def test_a_failing_check_reads_the_same_on_the_loop_and_in_a_thread() -> None:
    short, long = "the answer is 41", "the answer is 41" + " " * INLINE_SCAN_CHARS
    [on_loop] = await evaluate([make("contains", "42")], Observation(short))
    [threaded] = await evaluate([make("contains", "42")], Observation(long))
    assert not on_loop.passed and not threaded.passed
    assert on_loop.kind == threaded.kind == ASSERTION_FAILED
    assert on_loop.reason.split(", got ")[0] == threaded.reason.split(", got ")[0]


async def test_grader_errors_propagate() -> None:
    async def broken(rubric: str, output: str) -> tuple[bool, float, str]:
        raise RuntimeError("grader tier down")

    with pytest.raises(RuntimeError):
        await evaluate([make("llm-rubric", "x")], Observation("x"), grader=broken)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"pass": true, "score": 0.8, "reason": "good"}', (True, 0.8, "good")),
        ('```json\n{"reason": "bad", "pass": false, "score": 0}\n```', (False, 0.0, "bad")),
        ('Sure! {"pass": "true", "score": "1", "reason": "r"} Done.', (True, 1.0, "r")),
        ('{"score": 0.3, "reason": "weak"}', (False, 0.3, "weak")),
        ('{"pass": true}', (True, 1.0, "")),
        ('{"pass": true, "score": 7}', (True, 1.0, "")),
    ],
)
def test_parse_grader_answer(text: str, expected: tuple[bool, float, str]) -> None:
    assert parse_grader_answer(text) == expected


@pytest.mark.parametrize("text", ["I think it passes.", "[1, 2]", '{"reason": "no verdict"}', ""])
def test_parse_grader_answer_unusable_fails(text: str) -> None:
    passed, score, reason = parse_grader_answer(text)
    assert (passed, score) == (False, 0.0)
    assert reason.startswith("grader answer")


def test_build_rubric_prompt() -> None:
    messages = build_rubric_prompt("is polite", "Thanks!")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert '"pass"' in messages[0]["content"] and "untrusted" in messages[0]["content"]
    assert "<Output>\nThanks!\n</Output>" in messages[1]["content"]
    assert "<Rubric>\nis polite\n</Rubric>" in messages[1]["content"]
