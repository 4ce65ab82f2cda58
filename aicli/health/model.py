"""The health-check result type: `Check`, its statuses, the overall status and the exit code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from aicli.errors import ExitCode

Status = Literal["ok", "warn", "fail", "skip"]
Overall = Literal["ok", "warn", "fail"]
# What a check is about: a failed config/prompts check is invalid input (exit 2), a failed
# provider/cache check is something that cannot be reached or refuses us (exit 3).
Area = Literal["config", "provider", "cache", "prompts"]
STATUSES: tuple[str, ...] = get_args(Status)
DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str  # "config", "provider.openai.endpoint", "tier.standard.model", "cache", ...
    status: Status
    detail: str
    hint: str | None = None
    area: Area = "config"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "hint": self.hint}


def overall(checks: Iterable[Check]) -> Overall:
    """fail if any check failed, else warn if any warned, else ok (skips count as ok)."""
    statuses = {c.status for c in checks}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"


def exit_code(checks: Iterable[Check]) -> int:
    """0 when nothing failed; 2 for invalid config or prompts; 3 for an unreachable provider
    or cache, or a refused key."""
    failed = {c.area for c in checks if c.status == "fail"}
    if failed & {"config", "prompts"}:
        return ExitCode.USAGE
    return ExitCode.NO_ANSWER if failed else ExitCode.OK
