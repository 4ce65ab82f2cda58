"""What `test-prompts` derives from its flags and files before a run: --repeat, distinct
report and recording files, the --batch settings, and the fingerprint that names a batch run.

Each raises UsageError (exit 2) for bad input; nothing here calls a model or prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aicli.batch.run import BatchSettings
    from aicli.config import Config
    from aicli.suites.model import Suite
    from aicli.suites.plan import RunOptions


def parse_repeat(repeat: str, max_repeat: int | None) -> tuple[int, int | None]:
    """`--repeat N` -> (N, None); `--repeat auto` -> (3, M): at least 3 runs, at most M."""
    from aicli.errors import UsageError
    from aicli.suites.repeats import DEFAULT_MAX, MIN_RUNS

    text = repeat.strip().lower()
    if text == "auto":
        return MIN_RUNS, max_repeat if max_repeat is not None else DEFAULT_MAX
    if max_repeat is not None:
        raise UsageError("--max-repeat needs --repeat auto", "or give a fixed --repeat N alone")
    try:
        runs = int(text)
    except ValueError:
        runs = 0
    if not 1 <= runs <= 1000:
        raise UsageError(
            f"--repeat {repeat!r}: expected a whole number from 1 to 1000, or auto",
            "e.g. --repeat 5, or --repeat auto --max-repeat 10",
        )
    return runs, None


def check_distinct_files(
    outputs: list[Path],
    record: Path | None,
    replay: Path | None,
    inputs: list[tuple[str, Path]] | None = None,
) -> None:
    """A file written by -o or --record must be no other file of the run (a symlink, ./x or a
    hard link too): two outputs would mix into one, and an input would be overwritten."""
    from aicli.errors import UsageError

    named = [(what, path, False) for what, path in inputs or []]
    named += [("--output", p, True) for p in outputs]
    named += [(f, p, f == "--record") for f, p in (("--record", record), ("--replay", replay)) if p]
    seen: dict[object, tuple[str, Path, bool]] = {}
    for what, path, writes in named:
        try:
            st = path.stat()
            ident: object = (st.st_dev, st.st_ino)
        except OSError:
            ident = path.resolve()
        first = seen.get(ident)
        if first is not None and (writes or first[2]):
            raise UsageError(
                f"{what} {path}: the same file as {first[0]} {first[1]}",
                "give each report and recording its own file",
            )
        seen.setdefault(ident, (what, path, writes))


def batch_settings(timeout: str, only: bool) -> BatchSettings:
    import os
    import re

    from aicli.batch.run import BatchSettings
    from aicli.errors import UsageError

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", timeout)
    if m is None or float(m.group(1)) <= 0:
        raise UsageError(
            f"--batch-timeout: expected a duration such as 90s, 30m or 24h, got {timeout[:40]!r}",
            "a number with s, m, h or d (seconds when there is no unit)",
        )
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    settings = BatchSettings(timeout_s=float(m.group(1)) * scale, only=only)
    poll = os.environ.get("AICLI_BATCH_POLL_SECONDS", "").strip()
    if poll:
        try:
            settings.poll_max_s = max(0.01, float(poll))
        except ValueError:
            raise UsageError(
                f"$AICLI_BATCH_POLL_SECONDS: expected seconds, got {poll[:40]!r}",
                "unset it for the default (polls back off from 1 s to 60 s)",
            ) from None
        settings.poll_first_s = min(settings.poll_first_s, settings.poll_max_s)
    return settings


def fingerprint(cfg: Config, suites: list[Suite], opts: RunOptions) -> dict[str, object]:
    """What names a batch run: its suite files, config, tiers, model and parameters."""
    from aicli.digest import sha256_hex

    def digest(path: Path) -> str:
        try:
            return sha256_hex(path.read_bytes())
        except OSError:
            return ""

    config = Path(cfg.source)
    return {
        "suites": sorted(digest(s.file) for s in suites),
        "config": digest(config) if config.is_file() else "built-in",
        "tiers": sorted(opts.tiers), "model": opts.model, "repeat": opts.repeat,
        "filter": opts.filter, "shard": opts.shard, "grader": opts.grader,
        "fallback": opts.fallback, "redact": opts.redact,
        "only": bool(opts.batch and opts.batch.only),
    }  # fmt: skip
