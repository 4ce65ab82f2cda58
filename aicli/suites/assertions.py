"""Assertion checks, one function per type in a registry keyed by promptfoo's names."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aicli.reports.results import AssertionRecord, ReasonKind
from aicli.suites.grading import build_rubric_prompt as build_rubric_prompt
from aicli.suites.grading import excerpt
from aicli.suites.grading import parse_grader_answer as parse_grader_answer
from aicli.suites.model import Assertion, JsonType, MetricType, TextType

INVALID_JSON: ReasonKind = "invalid_json"
STRUCTURE_MISMATCH: ReasonKind = "structure_mismatch"
ASSERTION_FAILED: ReasonKind = "assertion_failed"
# The most fundamental failure names the case: broken JSON explains a missing key, and so on.
_KIND_RANK: dict[str, int] = {INVALID_JSON: 0, STRUCTURE_MISMATCH: 1, ASSERTION_FAILED: 2}

Grader = Callable[[str, str], Awaitable[tuple[bool, float, str]]]


@dataclass
class Observation:
    """What an assertion sees of one answer."""

    output: str
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False


@dataclass
class AssertionResult:
    assertion: Assertion
    passed: bool
    score: float
    reason: str  # why, with expected vs got ("ok" when it passed)
    kind: ReasonKind | None = None  # None if passed

    def record(self) -> AssertionRecord:
        """What reports keep of this result."""
        a = self.assertion
        return AssertionRecord(
            type=a.type,
            label=a.label,
            passed=self.passed,
            score=self.score,
            reason=self.reason,
            kind=self.kind,
            value=a.value,
            threshold=a.threshold,
            weight=a.weight,
            grader=a.extra.get("grader"),
        )


@dataclass
class Outcome:
    """A check's raw answer, before the `not-` prefix is applied."""

    ok: bool  # the positive property holds (e.g. the output contains the value)
    got: str  # what was found, for the reason
    kind: ReasonKind = ASSERTION_FAILED  # failure kind when a positive assertion fails
    error: bool = False  # the check could not finish: a failure even under `not-`


Check = Callable[[Assertion, Observation], Outcome]


def parse_json_output(text: str) -> Any:
    """The answer as JSON: the whole output, or the inside of one surrounding Markdown fence."""
    from aicli.jsontext import loads_answer

    return loads_answer(text)


def _json_or_outcome(obs: Observation) -> tuple[Any, Outcome | None]:
    try:
        return parse_json_output(obs.output), None
    except ValueError as exc:
        return None, Outcome(False, f"not JSON ({exc}): {excerpt(obs.output)}", INVALID_JSON)


# --- text checks ------------------------------------------------------------------------------


def _found(output: str, needle: str, fold: bool) -> int:
    return (output.lower().find(needle.lower())) if fold else output.find(needle)


def _present(output: str, needles: list[str], fold: bool) -> list[str]:
    text = output.lower() if fold else output  # folded once, not once per needle
    return [v for v in needles if (v.lower() if fold else v) in text]


def _contains(fold: bool) -> Check:
    def check(a: Assertion, obs: Observation) -> Outcome:
        pos = _found(obs.output, a.value, fold)
        if pos < 0:
            return Outcome(False, excerpt(obs.output))
        return Outcome(True, f"a match at {pos}: {excerpt(obs.output[max(0, pos - 40) :], 100)}")

    return check


def _contains_many(fold: bool, need_all: bool) -> Check:
    def check(a: Assertion, obs: Observation) -> Outcome:
        present = _present(obs.output, a.value, fold)
        found = set(present)
        missing = [v for v in a.value if v not in found]
        ok = not missing if need_all else bool(present)
        got = f"present {present}, missing {missing} in {excerpt(obs.output)}"
        return Outcome(ok, got)

    return check


def _equals(a: Assertion, obs: Observation) -> Outcome:
    if isinstance(a.value, (dict, list)):
        data, bad = _json_or_outcome(obs)
        if bad:
            return bad
        return Outcome(_json_equal(a.value, data), json.dumps(data, ensure_ascii=False)[:300])
    expected = a.value if isinstance(a.value, str) else json.dumps(a.value)
    return Outcome(obs.output == expected, excerpt(obs.output, 200))


def _json_equal(x: Any, y: Any) -> bool:
    """Deep equality where true != 1 (as in JSON), but 1 == 1.0."""
    if isinstance(x, bool) or isinstance(y, bool):
        return type(x) is type(y) and x == y
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_json_equal(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_json_equal(i, j) for i, j in zip(x, y, strict=True))
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return x == y
    return type(x) is type(y) and x == y


def _starts_with(a: Assertion, obs: Observation) -> Outcome:
    return Outcome(obs.output.startswith(a.value), excerpt(obs.output[:80], 80))


def _regex(a: Assertion, obs: Observation) -> Outcome:
    from aicli.regexes import RegexTimeout, search

    try:
        m = search(a.value, obs.output)
    except RegexTimeout as exc:
        return Outcome(False, str(exc), error=True)
    if m is None:
        return Outcome(False, f"no match in {excerpt(obs.output)}")
    return Outcome(True, f"match {excerpt(m.group(0), 80)} at {m.start()}")


# --- JSON checks ------------------------------------------------------------------------------


def _schema_errors(schema: Any, data: Any) -> list[str]:
    from aicli.jsontext import schema_errors

    return schema_errors(data, schema)[:5]


def _is_json(a: Assertion, obs: Observation) -> Outcome:
    data, bad = _json_or_outcome(obs)
    if bad:
        return bad
    if a.value is None:
        return Outcome(True, "valid JSON")
    errors = _schema_errors(a.value, data)
    if errors:
        return Outcome(
            False, "JSON that breaks the schema: " + "; ".join(errors), STRUCTURE_MISMATCH
        )
    return Outcome(True, "JSON valid against the schema")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_ok(value: Any, wanted: str) -> bool:
    actual = _json_type(value)
    if wanted == "number":
        return actual in ("integer", "number")
    if wanted == "integer" and actual == "number":
        return math.isfinite(value) and float(value).is_integer()
    return actual == wanted


def _structure(a: Assertion, obs: Observation) -> Outcome:
    data, bad = _json_or_outcome(obs)
    if bad:
        return bad
    if not isinstance(data, dict):
        return Outcome(False, f"a JSON {_json_type(data)}, not an object", STRUCTURE_MISMATCH)
    problems = []
    for key, types in a.value.items():
        if key not in data:
            problems.append(f"missing key {key!r}")
        elif not any(_type_ok(data[key], t) for t in types):
            problems.append(f"{key!r} is {_json_type(data[key])}, expected {' or '.join(types)}")
    if problems:
        return Outcome(False, "; ".join(problems), STRUCTURE_MISMATCH)
    return Outcome(True, f"keys {', '.join(a.value)} with the expected types")


# --- metric checks ----------------------------------------------------------------------------


def _latency(a: Assertion, obs: Observation) -> Outcome:
    assert a.threshold is not None
    return Outcome(obs.latency_ms <= a.threshold, f"{obs.latency_ms:.0f} ms")


def _cost(a: Assertion, obs: Observation) -> Outcome:
    assert a.threshold is not None
    return Outcome(obs.cost_usd <= a.threshold, f"${obs.cost_usd:.6f}")


@dataclass(frozen=True)
class Spec:
    """One deterministic assertion type: its check, and what a passing answer looks like
    ({v} the value as JSON, {raw} as written, {t} the threshold)."""

    check: Check
    expect: str


# Every type but llm-rubric (graded, see grading.py); the keys are model.py's type names.
REGISTRY: dict[TextType | JsonType | MetricType, Spec] = {
    "equals": Spec(_equals, "output equal to {v}"),
    "contains": Spec(_contains(fold=False), "output containing {v}"),
    "icontains": Spec(_contains(fold=True), "output containing {v} (any case)"),
    "contains-any": Spec(
        _contains_many(fold=False, need_all=False), "output containing any of {v}"
    ),
    "contains-all": Spec(_contains_many(fold=False, need_all=True), "output containing all of {v}"),
    "icontains-any": Spec(
        _contains_many(fold=True, need_all=False), "output containing any of {v} (any case)"
    ),
    "icontains-all": Spec(
        _contains_many(fold=True, need_all=True), "output containing all of {v} (any case)"
    ),
    "starts-with": Spec(_starts_with, "output starting with {v}"),
    "regex": Spec(_regex, "output matching /{raw}/"),
    "is-json": Spec(_is_json, "valid JSON"),
    "json-schema": Spec(_is_json, "JSON valid against the schema"),  # the schema is required
    "structure": Spec(_structure, "a JSON object with {v}"),
    "latency": Spec(_latency, "latency <= {t:g} ms"),
    "cost": Spec(_cost, "cost <= ${t:g}"),
}


def _spec(a: Assertion) -> Spec:
    return REGISTRY[a.base_type]  # type: ignore[index]  # parse_asserts only lets known names in


def _expected(a: Assertion) -> str:
    v = a.value
    if a.base_type == "is-json" and v is not None:
        pattern = "JSON valid against the schema"
    else:
        pattern = _spec(a).expect
    shown = json.dumps(v, ensure_ascii=False) if v is not None else ""
    shown = shown if len(shown) <= 200 else shown[:199] + "…"
    text = pattern.format(v=shown, raw=v, t=a.threshold or 0)
    return ("not " + text) if a.negate else text


def check_one(a: Assertion, obs: Observation) -> AssertionResult:
    """A deterministic assertion (everything but llm-rubric) against one observation."""
    outcome = _spec(a).check(a, obs)
    passed = outcome.ok != a.negate and not outcome.error
    if passed:
        return AssertionResult(a, True, 1.0, "ok")
    kind = ASSERTION_FAILED if a.negate and not outcome.error else outcome.kind
    reason = f"{kind}: {a.label}: expected {_expected(a)}, got {outcome.got}"
    return AssertionResult(a, False, 0.0, reason, kind)


# --- llm-rubric ---------------------------------------------------------------------------------


async def _rubric(a: Assertion, obs: Observation, grader: Grader | None) -> AssertionResult:
    if grader is None:
        reason = f"{ASSERTION_FAILED}: {a.label}: no grader is available for llm-rubric"
        return AssertionResult(a, False, 0.0, reason, ASSERTION_FAILED)
    ok, score, why = await grader(a.value, obs.output)
    if a.threshold is not None:
        ok = ok and score >= a.threshold
    passed = ok != a.negate
    score = 1.0 - score if a.negate else score
    judge = f"grader: {why}" if why else "grader gave no reason"
    if passed:
        return AssertionResult(a, True, score, f"ok ({judge})")
    need = f"score >= {a.threshold:g}" if a.threshold is not None else "a pass"
    expected = f"a fail from the grader (got {score:.2f})" if a.negate else need
    reason = f"{ASSERTION_FAILED}: {a.label}: expected {expected}, got score {score:.2f}; {judge}"
    return AssertionResult(a, False, score, reason, ASSERTION_FAILED)


async def evaluate(
    assertions: list[Assertion], obs: Observation, *, grader: Grader | None = None
) -> list[AssertionResult]:
    """Every assertion against one answer, in order; llm-rubric graders run concurrently.

    Exceptions raised by `grader` (e.g. NoAnswerError, BudgetError) propagate to the caller.
    """
    results: list[AssertionResult | None] = [None] * len(assertions)
    pending: dict[int, Awaitable[AssertionResult]] = {}
    local = [i for i, a in enumerate(assertions) if a.base_type != "llm-rubric"]
    for i, a in enumerate(assertions):
        if a.base_type == "llm-rubric":
            pending[i] = _rubric(a, obs, grader)
    if local:

        def run() -> list[AssertionResult]:
            return [check_one(assertions[i], obs) for i in local]

        # Real CPU work (regexes, schemas, big answers) goes off the loop, so Ctrl-C still
        # works; a few string checks on a short answer cost less than the thread hand-off.
        inline = _cheap([assertions[i] for i in local], obs)
        checked = run() if inline else await asyncio.to_thread(run)
        for i, r in zip(local, checked, strict=True):
            results[i] = r
    if pending:
        graded = await asyncio.gather(*pending.values())
        for i, r in zip(pending, graded, strict=True):
            results[i] = r
    return [r for r in results if r is not None]


# Checks that are string or number comparisons run on the event loop while the text they scan
# is small: a thread hand-off per case (~100 us) costs more than they do. Regexes, schemas and
# JSON parsing always go to a thread.
_SCANS = frozenset(
    {
        "equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any",
        "icontains-all", "starts-with", "latency", "cost",
    }
)  # fmt: skip
INLINE_SCAN_CHARS = 1_000_000  # answer length x needles: well under a millisecond


def _cheap(assertions: list[Assertion], obs: Observation) -> bool:
    """Whether these checks of this answer are cheap enough to run on the event loop."""
    scans = 0
    for a in assertions:
        if a.base_type not in _SCANS or (
            a.base_type == "equals" and isinstance(a.value, (dict, list))
        ):
            return False  # a JSON `equals` parses the answer
        scans += len(a.value) if isinstance(a.value, list) else 1
    return scans * len(obs.output) <= INLINE_SCAN_CHARS


def case_verdict(results: list[AssertionResult], threshold: float | None) -> tuple[bool, float]:
    """(passed, weighted score). Without a threshold every assertion must pass (promptfoo)."""
    if not results:
        return True, 1.0
    total = sum(r.assertion.weight for r in results)
    if total > 0:
        score = sum(r.assertion.weight * r.score for r in results) / total
    else:
        score = 1.0 if all(r.passed for r in results) else 0.0
    if threshold is None:
        return all(r.passed for r in results), score
    return score >= threshold - 1e-9, score


def primary_failure(results: list[AssertionResult]) -> AssertionResult | None:
    """The failure that best explains a failed case (invalid_json before structure_mismatch ...)."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return None
    return min(failed, key=lambda r: (_KIND_RANK.get(r.kind or "", 3), r.assertion.index))
