"""The HTML report in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium).

The page's filters are CSS only (radio inputs and `~` rules), so only a browser can tell whether
they work: checking the CSS text proved nothing. The browser download site is not reachable, so
`playwright install` is never run; the system's chromium is launched by path. Under CI=true a
missing chromium or playwright fails these tests; elsewhere they are skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_aicli

CHROMIUM = "/usr/bin/chromium"
LONG = "word " * 3000 + "x" * 30_000  # a long answer: many words, then one unbroken run


def _need(what: str, ok: bool) -> None:
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing (CI installs it: apt-get install -y chromium)")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright (the test extra)", False)
    _need(CHROMIUM, Path(CHROMIUM).exists() or shutil.which("chromium") is not None)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=["--no-sandbox"],  # CI runs as root, where Chromium's sandbox refuses to start
        )
        yield chromium
        chromium.close()


SUITES = {
    "alpha.test.yaml": f"""
suite: alpha
prompt: "{{{{ text }}}}"
cases:
  - name: a-pass
    vars: {{text: "hello alpha"}}
    assert: [{{type: contains, value: hello}}]
  - name: a-fail
    vars: {{text: "hello alpha"}}
    assert: [{{type: contains, value: goodbye}}]
  - name: a-long
    vars: {{text: "{LONG}"}}
    assert: [{{type: equals, value: short}}]
""",
    "beta.test.yaml": """
suite: beta
prompt: "{{ text }}"
cases:
  - name: b-pass
    vars: {text: "hello beta"}
    assert: [{type: icontains, value: BETA}]
  - name: b-fail
    vars: {text: "hello beta"}
    assert: [{type: starts-with, value: bye}]
""",
}


@pytest.fixture
def report(make_config: Any) -> Path:
    """alpha (1 passed, 2 failed) and beta (1 passed, 1 failed) on two tiers: 10 cards."""
    make_config(tiers={"echo2": {"model": "echo", "provider": "echo"}})
    suites = Path.cwd() / "suites"
    suites.mkdir()
    for name, text in SUITES.items():
        (suites / name).write_text(text, encoding="utf-8")
    page = Path.cwd() / "report.html"
    result = run_aicli(
        "test-prompts", str(suites), "-t", "echo", "-t", "echo2", "-o", str(page), "--no-cache"
    )
    assert result.exit_code == 1, result
    assert result.stdout.splitlines()[-1] == "4 passed, 6 failed"
    return page


@pytest.fixture
def page(browser: Any, report: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.goto(report.as_uri())
    tab.problems = problems
    yield tab
    context.close()


def visible_cards(page: Any) -> set[str]:
    """`suite/case [tier]` of every case card (not the side-by-side rows) now visible."""
    shown = set()
    for card in page.locator("main > .case").all():
        if card.is_visible():
            ident = card.locator("b").first.inner_text()
            tier = card.locator(".muted").first.inner_text().strip("[]").split("]")[0]
            shown.add(f"{ident} [{tier}]")
    return shown


def choose(page: Any, group: str, text: str) -> None:
    """Click the label `text` in the filter group titled `group` (Show, suite, tier)."""
    ident = page.evaluate(
        """([group, text]) => {
            let title = null;
            for (const el of document.querySelector('.filters').children) {
                if (el.tagName === 'B') title = el.textContent;
                if (el.tagName === 'LABEL' && title === group && el.textContent === text)
                    return el.htmlFor;
            }
            return null;
        }""",
        [group, text],
    )
    assert ident, f"no filter {group}: {text}"
    page.locator(f"label[for='{ident}']").click()
    assert page.locator(f"#{ident}").is_checked()


def cards(*specs: str) -> set[str]:
    out = set()
    for spec in specs:
        name, tiers = spec.split("@")
        out |= {f"{name} [{t}]" for t in tiers.split(",")}
    return out


FAILED = cards("alpha/a-fail@echo,echo2", "alpha/a-long@echo,echo2", "beta/b-fail@echo,echo2")
PASSED = cards("alpha/a-pass@echo,echo2", "beta/b-pass@echo,echo2")


def test_the_page_opens_without_console_errors_and_shows_failures_first(page: Any) -> None:
    assert page.title() == "aicli test-prompts: 4 passed, 6 failed"
    assert visible_cards(page) == FAILED  # the default filter: failed only
    assert not page.locator("main h2.good").is_visible()
    assert page.problems == []


def test_each_filter_changes_which_cases_are_visible(page: Any) -> None:
    choose(page, "Show", "all")
    assert visible_cards(page) == FAILED | PASSED
    choose(page, "suite", "beta")
    assert visible_cards(page) == cards("beta/b-fail@echo,echo2", "beta/b-pass@echo,echo2")
    choose(page, "tier", "echo2")
    assert visible_cards(page) == cards("beta/b-fail@echo2", "beta/b-pass@echo2")
    choose(page, "Show", "failed")
    assert visible_cards(page) == cards("beta/b-fail@echo2")
    choose(page, "suite", "alpha")
    assert visible_cards(page) == cards("alpha/a-fail@echo2", "alpha/a-long@echo2")
    choose(page, "suite", "all")
    choose(page, "tier", "all")
    assert visible_cards(page) == FAILED
    assert page.problems == []


def test_the_side_by_side_rows_follow_the_filters(page: Any) -> None:
    rows = page.locator("table.cmp tr.case")
    assert rows.count() == 5  # every case ran on both tiers

    def shown() -> set[str]:
        return {r.locator("b").inner_text() for r in rows.all() if r.is_visible()}

    assert shown() == {"alpha/a-fail", "alpha/a-long", "beta/b-fail"}
    choose(page, "Show", "all")
    assert len(shown()) == 5
    choose(page, "suite", "alpha")
    assert shown() == {"alpha/a-pass", "alpha/a-fail", "alpha/a-long"}


def test_the_chosen_filter_is_marked_and_reachable_by_keyboard(page: Any) -> None:
    def background(ident: str) -> str:
        return str(
            page.eval_on_selector(f"label[for='{ident}']", "e => getComputedStyle(e).background")
        )

    assert background("f-failed") != background("f-all")
    before = background("f-all")
    choose(page, "Show", "all")
    assert background("f-all") != before
    # the radios are hidden from sight, not from the keyboard: arrows move the choice
    page.focus("#f-all")
    page.keyboard.press("ArrowLeft")
    assert page.locator("#f-failed").is_checked()
    assert visible_cards(page) == FAILED


def test_the_tier_table(page: Any) -> None:
    table = page.locator("h2:text-is('Tiers') + table")
    assert table.is_visible()
    rows = [
        [c.inner_text() for c in row.locator("th, td").all()] for row in table.locator("tr").all()
    ]
    head = rows[0]
    assert head[:7] == [
        "tier", "pass rate", "95% CI", "passed", "failed", "incl. errors", "skipped"
    ]  # fmt: skip
    by_tier = {r[0]: dict(zip(head, r, strict=True)) for r in rows[1:]}
    assert set(by_tier) == {"echo", "echo2"}
    for tier in by_tier.values():
        assert (tier["passed"], tier["failed"], tier["pass rate"]) == ("2", "3", "40.0%")
        assert tier["95% CI"] == "11.8–76.9%"  # Wilson, 2 of 5


def test_a_long_answer_stays_inside_the_page(page: Any) -> None:
    card = page.locator("main > .case", has_text="alpha/a-long").first
    answer = card.locator("pre").last
    assert answer.is_visible()
    text = answer.inner_text()
    assert text.startswith("word word") and text.rstrip().endswith("…")  # cut at 20,000
    assert 20_000 <= len(text) < 20_010
    box = answer.bounding_box()
    assert box["x"] + box["width"] <= 1000  # the unbroken run wraps instead of widening it
    assert box["height"] <= 30 * 16 + 40  # max-height 30rem: it scrolls inside itself
    assert page.evaluate("document.documentElement.scrollWidth") <= 1000
    assert answer.evaluate("e => e.scrollHeight > e.clientHeight")
    assert page.problems == []
