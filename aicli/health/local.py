"""Local health checks: the cache (backend, location, writable, readable, entries) and the
prompts (templates load, the lock matches, suites parse)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicli.errors import AicliError
from aicli.health.model import Check

if TYPE_CHECKING:
    from aicli.config import Config


# ---- cache ------------------------------------------------------------------------------------


def cache_checks(cfg: Config) -> list[Check]:
    import asyncio

    from aicli.cache import backend_name, open_cache, resolve_cache_dir
    from aicli.errors import CacheUnavailable, UsageError

    disk = backend_name(cfg) == "disk"
    if disk:
        directory = resolve_cache_dir(cfg)
        hint = "set cache.dir in the config or $AICLI_CACHE_DIR to a writable folder"
        problem = _unwritable(directory)
        if problem:
            return [Check("cache", "fail", f"disk cache at {directory}: {problem}", hint, "cache")]
    try:
        cache = open_cache(cfg)
    except UsageError as exc:  # the backend's package is missing: what the CLI exits 2 for
        return [Check("cache", "fail", exc.message, exc.hint, "config")]

    async def probe() -> dict[str, Any]:
        try:
            return await cache.stats()  # opens both stores: a damaged one is an error here
        finally:
            await cache.aclose()

    try:
        stats = asyncio.run(probe())
    except CacheUnavailable as exc:
        return [Check("cache", "fail", exc.message, exc.hint, "cache")]
    entries = int(stats.get("entries", 0))
    state = "writable, readable" if disk else "reachable"
    detail = f"{stats['backend']} cache at {stats['location']}: {state}, {entries} entries"
    return [Check("cache", "ok", detail, None, "cache")]


def _unwritable(directory: Path) -> str | None:
    """Why the cache folder cannot be written (a real probe file, not just permission bits)."""
    import tempfile

    if directory.exists() and not directory.is_dir():
        return "exists but is not a folder"
    probe = directory if directory.exists() else _existing_parent(directory)
    if probe is None or not probe.is_dir():
        return "its parent is not a folder"
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".aicli-doctor-"):
            pass
    except OSError as exc:
        return f"not writable ({exc.strerror or exc})"
    return None


def _existing_parent(path: Path) -> Path | None:
    for parent in path.parents:
        if parent.exists():
            return parent
    return None


# ---- prompts ----------------------------------------------------------------------------------


def prompt_checks(cfg: Config) -> list[Check]:
    from aicli.errors import SuiteError
    from aicli.suites.load import discover_suite_files, load_suites, validate_against_templates
    from aicli.templates import TemplateStore

    root = cfg.prompts_dir
    if not root.is_dir():
        detail = f"no prompts folder at {root}"
        hint = "optional: templates and suites go there (prompts_dir in the config)"
        return [Check("prompts", "skip", detail, hint, "prompts")]
    store = TemplateStore(root, check_lock=False)
    templates = store.all()
    problems = store.problems()
    checks: list[Check] = []
    if problems:
        first = problems[0].error
        more = f" (and {len(problems) - 1} more broken files)" if len(problems) > 1 else ""
        checks.append(
            Check("prompts.templates", "fail", first.message + more, first.hint, "prompts")
        )
    else:
        detail = f"{len(templates)} template versions in {root} load"
        checks.append(Check("prompts.templates", "ok", detail, None, "prompts"))
    lock = store.lock_error()
    if lock is not None:
        checks.append(Check("prompts.lock", "fail", lock.message, lock.hint, "prompts"))
    else:
        new = sum(state == "new" for state in store.lock_status().values())
        detail = "every locked version matches its checksum"
        lock_hint = None
        if new:
            detail += f"; {new} versions not locked yet"
            lock_hint = "run `aicli render --lock` and commit prompts.lock"
        checks.append(Check("prompts.lock", "ok", detail, lock_hint, "prompts"))
    try:
        files = discover_suite_files([], root)
    except SuiteError:
        checks.append(Check("prompts.suites", "skip", f"no *.test.yaml in {root}", None, "prompts"))
        return checks
    try:
        suites = load_suites(files, root)
        validate_against_templates(suites, TemplateStore(root, check_lock=False))
    except AicliError as exc:
        checks.append(Check("prompts.suites", "fail", exc.message, exc.hint, "prompts"))
    else:
        cases = sum(len(s.cases) for s in suites)
        detail = f"{len(suites)} suites ({cases} cases) parse"
        checks.append(Check("prompts.suites", "ok", detail, None, "prompts"))
    return checks
