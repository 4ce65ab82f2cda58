"""The error hierarchy: every user-facing failure is an AicliError carrying its exit code and hint.

Code below the CLI raises these; `aicli.cli.output` turns one into a single `aicli: error:` line
(plus an optional hint line) and the documented exit code.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit status aicli uses: the README's table, named once."""

    OK = 0
    FAILED = 1  # test-prompts / report merge: a case failed (also: an unexpected crash)
    USAGE = 2  # bad usage or bad input: flags, config, templates, suites, a missing key
    NO_ANSWER = 3  # no usable answer; a provider or the cache unreachable
    BUDGET = 4  # the cost cap would be exceeded
    INTERRUPTED = 130  # Ctrl-C
    TERMINATED = 143  # SIGTERM: 128 + 15, as a shell reports it


class AicliError(Exception):
    """A failure the user should see as one clear line, never as a traceback."""

    exit_code: int = ExitCode.USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(AicliError):
    """Bad flags or unreadable input (exit 2)."""

    exit_code: int = ExitCode.USAGE


class MissingKeyError(UsageError):
    """A provider's API key variable is not set (exit 2; for the service, its operator's
    problem, not the caller's: 503)."""


class ConfigError(AicliError):
    """The configuration file is malformed or invalid (exit 2)."""

    exit_code: int = ExitCode.USAGE


class TemplateError(AicliError):
    """A template could not be found, validated, locked or rendered (exit 2)."""

    exit_code: int = ExitCode.USAGE


class SuiteError(AicliError):
    """A suite file is invalid (exit 2); raised before any model is called."""

    exit_code: int = ExitCode.USAGE


class CacheError(AicliError):
    """The cache directory is unusable or unsafe (exit 2)."""

    exit_code: int = ExitCode.USAGE


class CacheUnavailable(CacheError):
    """The cache cannot be reached or used just now: Redis down or hung, a full, read-only or
    failing disk, a store locked too long (exit 3 for `aicli cache ...`).

    A command that has an answer to give warns once and carries on without the cache."""

    exit_code: int = ExitCode.NO_ANSWER


class NoAnswerError(AicliError):
    """No usable answer: all tiers failed, the answer broke --schema, or a cache miss (exit 3)."""

    exit_code: int = ExitCode.NO_ANSWER


class RejectedError(NoAnswerError):
    """The provider refused the request itself (an HTTP 4xx such as 400: a field it does not
    accept, a prompt over the context window): sent again, it is refused again (exit 3; the
    service answers with that status)."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int,
        detail: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status, self.detail, self.code, self.param = status, detail, code, param


class BudgetError(AicliError):
    """The cost cap would be exceeded; nothing past the cap was spent (exit 4)."""

    exit_code: int = ExitCode.BUDGET


class QuotaError(BudgetError):
    """The service's daily budget (serve.daily_budget_usd) would be exceeded (exit 4, HTTP 429)."""

    exit_code: int = ExitCode.BUDGET


class BudgetUnavailable(AicliError):
    """The shared daily spend cannot be read or counted (Redis down), so a call that would
    spend money is refused: money fails closed (exit 3, HTTP 503 budget_unavailable)."""

    exit_code: int = ExitCode.NO_ANSWER

    def __init__(self, message: str, hint: str | None = None, *, retry_after_s: float) -> None:
        super().__init__(message, hint)
        self.retry_after_s = retry_after_s


def close_matches(name: str, names: Iterable[str], n: int = 3) -> list[str]:
    """The names most like `name`, best first (for "did you mean" hints)."""
    import difflib

    return difflib.get_close_matches(name, list(names), n=n, cutoff=0.6)


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """`; did you mean 'x'?` when a known name is close to `name`, else an empty string."""
    near = close_matches(name, names, n=1)
    return f"; did you mean '{near[0]}'?" if near else ""
