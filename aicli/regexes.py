"""Regular expressions from untrusted files (suites, schemas), compiled once, run with a time limit.

A pattern like `(a+)+$` backtracks for hours on a short answer; the stdlib `re` cannot be
interrupted (it holds the GIL, so not even another thread or Ctrl-C gets a turn). The `regex`
package stops a search after `timeout` seconds and releases the GIL while it searches.
"""

from __future__ import annotations

import functools
from typing import Any

TIMEOUT_S = 1.0  # one search; an assertion or schema keyword that takes longer fails


class RegexTimeout(Exception):
    """A search ran past its time limit (usually catastrophic backtracking)."""

    def __init__(self, pattern: str, timeout: float) -> None:
        self.pattern = pattern
        shown = pattern if len(pattern) <= 60 else pattern[:59] + "…"
        super().__init__(f"the regular expression /{shown}/ took longer than {timeout:g} s")


@functools.lru_cache(maxsize=512)
def compiled(pattern: str) -> Any:
    """The compiled pattern; raises ValueError (with the reason) when it is not valid."""
    import regex

    try:
        return regex.compile(pattern, regex.VERSION0)  # VERSION0: the same syntax as `re`
    except regex.error as exc:
        raise ValueError(str(exc)) from None


def search(pattern: str, text: str, timeout: float = TIMEOUT_S) -> Any:
    """`re.search` with a time limit: a match or None; raises RegexTimeout, ValueError."""
    try:
        return compiled(pattern).search(text, timeout=timeout, concurrent=True)
    except TimeoutError:
        raise RegexTimeout(pattern, timeout) from None
