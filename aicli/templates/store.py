"""Finding templates under prompts_dir, resolving NAME[@VERSION], and what the lock records.

Start-up time: every file is read and schema-checked, but the Jinja work is done only where
needed: for the name asked for, and for a locked version whose checksum may not match (or may
depend on included files). `all()`, `problems()`, `--list` and `--lock` vet every file.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicli.errors import TemplateError
from aicli.templates.lockfile import LOCK_NAME, read_lock_file, write_lock_file
from aicli.templates.model import (
    VERSION_RE,
    Template,
    checksum,
    claimed_name,
    display,
    is_prerelease,
    is_template_data,
    parse_template,
    read_yaml_file,
    semver_key,
)
from aicli.templates.sandbox import analyze, may_include

SKIP_DIRS = {"node_modules", "__pycache__", "venv"}


def build_template(fields: dict[str, Any], path: Path, root: Path) -> Template:
    """Vet one template file's checked fields: Jinja syntax, includes, declared names, checksum."""
    where = display(path)
    sources = {"template": fields["template"]}
    if fields["system"] is not None:
        sources["system"] = fields["system"]
    includes, used = analyze(sources, root, where)
    undeclared = sorted(used - set(fields["variables"]))
    if undeclared:
        listed = ", ".join(f"'{n}'" for n in undeclared)
        raise TemplateError(
            f"{where}: uses undeclared variable{'s' if len(undeclared) > 1 else ''} {listed}",
            f"declare it under `variables:` (declared: {', '.join(fields['variables']) or 'none'})",
        )
    return Template(
        **fields,
        path=path,
        checksum=checksum(fields["template"], fields["system"], fields["variables"], includes),
        includes=includes,
    )


def _candidates(root: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            if name.startswith(".") or name.endswith((".test.yaml", ".test.yml")):
                continue
            if name.endswith((".yaml", ".yml")):
                found.append(Path(folder) / name)
    return found


@dataclass(frozen=True)
class Problem:
    """A template file that could not be loaded. `name` is the template name it declares, or
    None when the file could not be read far enough to know it (bad YAML, not UTF-8, ...)."""

    name: str | None
    path: Path
    error: TemplateError


class _File:
    """A template file whose schema passed; built (Jinja-vetted) on first need, once."""

    def __init__(self, fields: dict[str, Any], path: Path) -> None:
        self.fields, self.path = fields, path
        self.name: str = fields["name"]
        self.key = f"{self.name}@{fields['version']}"
        self._built: Template | Problem | None = None

    def built(self, root: Path) -> Template | Problem:
        if self._built is None:
            try:
                self._built = build_template(self.fields, self.path, root)
            except TemplateError as exc:
                self._built = Problem(self.name, self.path, exc)
        return self._built

    def plain_checksum(self) -> str | None:
        """The checksum without the Jinja work, when the file certainly includes nothing."""
        f = self.fields
        if may_include(f["template"]) or may_include(f["system"] or ""):
            return None
        return checksum(f["template"], f["system"], f["variables"], {})


class TemplateStore:
    """Every template version under one prompts folder, loaded on first use.

    A bad file only breaks its own name: every lookup of a name with a broken file (or a
    duplicated version) fails with that file's error, other names keep working. A file whose
    name cannot be read breaks no lookup; it is logged once and named when a lookup misses.
    """

    def __init__(self, prompts_dir: Path, *, check_lock: bool = True) -> None:
        self.prompts_dir = Path(prompts_dir)
        self.check_lock = check_lock
        self._files: list[_File | Problem] | None = None  # discovery order
        self._templates: list[Template] | None = None
        self._problems: list[Problem] = []
        self._lock_ok = False
        self._warned = False

    @property
    def lock_path(self) -> Path:
        return self.prompts_dir / LOCK_NAME

    def _scan(self) -> list[_File | Problem]:
        """Every template file, read and schema-checked (no Jinja yet), in discovery order."""
        if self._files is not None:
            return self._files
        found: list[_File | Problem] = []
        if self.prompts_dir.is_dir():
            for path in _candidates(self.prompts_dir):
                name = None
                try:
                    data = read_yaml_file(path, self.prompts_dir)
                    if not is_template_data(data):
                        continue
                    name = claimed_name(data)
                    found.append(_File(parse_template(data, path), path))
                except TemplateError as exc:
                    found.append(Problem(name, path, exc))
        self._files = found
        return found

    def _assemble(self, files: Sequence[_File | Problem]) -> tuple[list[Template], list[Problem]]:
        """Build files (in discovery order): the good templates, sorted, and the problems."""
        built: list[Template] = []
        problems: list[Problem] = []
        first: dict[str, Template] = {}
        duplicated: set[str] = set()
        for item in files:
            tpl = item if isinstance(item, Problem) else item.built(self.prompts_dir)
            if isinstance(tpl, Problem):
                problems.append(tpl)
                continue
            if tpl.key in first:
                other = display(first[tpl.key].path)
                error = TemplateError(
                    f"{tpl.key} is defined twice: in {other} and in {display(tpl.path)}",
                    "give one of them a new version",
                )
                problems.append(Problem(tpl.name, tpl.path, error))
                duplicated.add(tpl.key)
                continue
            first[tpl.key] = tpl
            built.append(tpl)
        # Neither copy of a duplicated version can be trusted (or locked).
        templates = [t for t in built if t.key not in duplicated]
        templates.sort(key=lambda t: (t.name, semver_key(t.version)))
        return templates, problems

    def _discover(self) -> list[Template]:
        if self._templates is None:
            self._templates, self._problems = self._assemble(self._scan())
        return self._templates

    def _named(self, name: str) -> tuple[list[Template], list[Problem]]:
        """`_discover` narrowed to one name, building only that name's files."""
        if self._templates is not None:
            return self._templates, self._problems
        return self._assemble([f for f in self._scan() if f.name == name])

    def _check_lock(self) -> None:
        if self.check_lock and not self._lock_ok:
            # Release integrity is global on purpose: CI must catch any edited locked version.
            error = self.lock_error()
            if error is not None:
                raise error
            self._lock_ok = True

    def _load(self) -> list[Template]:
        templates = self._discover()
        self._check_lock()
        return templates

    def _bump_hint(self) -> str:
        return (
            "a released version must not change: put the edit in a new version; if it was never "
            f"released, delete its line from {display(self.lock_path)} and rerun "
            "`aicli render --lock`"
        )

    def all(self) -> list[Template]:
        """Every template version that loaded, sorted by name and then by semver."""
        return list(self._load())

    def problems(self) -> list[Problem]:
        """Every template file that could not be loaded, in discovery order."""
        self._discover()
        return list(self._problems)

    def versions(self, name: str) -> list[Template]:
        return [t for t in self._load() if t.name == name]

    def _unloaded(self) -> list[Problem]:
        # Only a file that fails before its schema check has no name: _scan finds them all.
        return [p for p in self._scan() if isinstance(p, Problem) and p.name is None]

    def _unloaded_note(self, name: str) -> str:
        """Tells a user whose template has, say, a YAML error why its name is 'unknown'."""

        def unlikely(problem: Problem) -> bool:  # files named after the template come first
            stem, folder = problem.path.stem, problem.path.parent.name
            return not (name in (stem, folder) or stem.startswith((f"{name}-", f"{name}_")))

        unloaded = sorted(self._unloaded(), key=unlikely)
        if not unloaded:
            return ""
        n = len(unloaded)
        files = "file" if n == 1 else "files"
        more = f" (and {n - 1} more, see `aicli render --list`)" if n > 1 else ""
        return f"; {n} template {files} could not be loaded: {unloaded[0].error.message}{more}"

    def _warn_unloaded(self) -> None:
        if self._warned:
            return
        self._warned = True
        log = logging.getLogger("aicli")
        for problem in self._unloaded():
            hint = f"; {problem.error.hint}" if problem.error.hint else ""
            log.warning("%s (file skipped%s)", problem.error.message, hint)

    def get(self, ref: str) -> Template:
        """`NAME` -> its highest released version (pre-releases only if there is nothing else);
        `NAME@X.Y.Z` -> exactly that version.

        Fails with the file's own error when any file of NAME is broken; files whose name
        cannot be read are logged as a warning (once per store) on success.
        """
        tpl = self.resolve(ref)
        self._warn_unloaded()
        return tpl

    def resolve(self, ref: str) -> Template:
        """`get` without the warning, for callers that report broken files themselves."""
        name, sep, version = ref.strip().partition("@")
        if sep and not VERSION_RE.match(version):
            raise TemplateError(
                f"'{ref}': version '{version}' is not semver X.Y.Z", "e.g. extraction@1.2.0"
            )
        self._check_lock()
        templates, problems = self._named(name)
        for problem in problems:
            if problem.name == name:
                raise TemplateError(problem.error.message, problem.error.hint)
        if not self._scan():  # no template file at all, good or bad
            where = display(self.prompts_dir)
            state = "does not exist" if not self.prompts_dir.is_dir() else "has no templates"
            raise TemplateError(
                f"unknown template '{name}': the prompts folder {where} {state}",
                "set prompts_dir in aicli.yaml (relative to that file) or add NAME.yaml there",
            )
        versions = [t for t in templates if t.name == name]
        if not versions:
            names = sorted({f.name for f in self._scan() if f.name})  # good and broken ones
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            if close:
                hint = f"did you mean {' or '.join(close)}?"
            elif names:
                hint = f"available: {', '.join(names)} (see `aicli render --list`)"
            else:
                hint = "fix the files that could not be loaded (`aicli render --list` lists them)"
            where = display(self.prompts_dir)
            raise TemplateError(
                f"unknown template '{name}' in {where}{self._unloaded_note(name)}", hint
            )
        if not sep:
            released = [t for t in versions if not is_prerelease(t.version)]
            return (released or versions)[-1]
        for tpl in versions:
            if tpl.version == version:
                return tpl
        raise TemplateError(
            f"template '{name}' has no version {version}{self._unloaded_note(name)}",
            f"available: {', '.join(t.version for t in versions)}",
        )

    # ---- the lock ----------------------------------------------------------------------------

    def read_lock(self) -> dict[str, str]:
        """name@version -> checksum as recorded; a missing lock file records nothing."""
        return read_lock_file(self.lock_path)

    def lock_status(self) -> dict[str, str]:
        """name@version -> 'locked' | 'new' | 'changed' for every template version."""
        locked = self.read_lock()
        status = {}
        for tpl in self._discover():
            recorded = locked.get(tpl.key)
            status[tpl.key] = (
                "new" if recorded is None else "locked" if recorded == tpl.checksum else "changed"
            )
        return status

    def _changed(self) -> list[tuple[Template, str]]:
        locked = self.read_lock()
        templates = self._templates
        if templates is None and locked:  # what `_discover` would find, building only the
            # locked versions whose checksum may differ (a version's copies go together)
            files = [f for f in self._scan() if isinstance(f, _File) and f.key in locked]
            unsure = {f.key for f in files if f.plain_checksum() != locked[f.key]}
            templates = self._assemble([f for f in files if f.key in unsure])[0]
        return [
            (tpl, locked[tpl.key])
            for tpl in templates or []
            if tpl.key in locked and locked[tpl.key] != tpl.checksum
        ]

    def lock_problems(self) -> list[str]:
        """One message per locked version whose content no longer matches its checksum."""
        return [
            f"{tpl.key} ({display(tpl.path)}) changed since it was locked "
            f"(checksum {recorded} -> {tpl.checksum}): bump the version instead of "
            "editing a released one"
            for tpl, recorded in self._changed()
        ]

    def lock_error(self) -> TemplateError | None:
        """The error for changed locked versions (naming every one of them), or None."""
        changed = self._changed()
        if not changed:
            return None
        message = self.lock_problems()[0]
        if len(changed) > 1:
            message += f" (also changed: {', '.join(tpl.key for tpl, _ in changed[1:])})"
        return TemplateError(message, self._bump_hint())

    def write_lock(self) -> list[str]:
        """Record every version not locked yet; returns what was added. Refuses changed ones."""
        templates = self._discover()
        error = self.lock_error()
        if error is not None:
            raise error
        if not templates and not self.prompts_dir.is_dir():
            raise TemplateError(f"the prompts folder {display(self.prompts_dir)} does not exist")
        locked = self.read_lock()
        added = [
            f"added {t.key}: {t.checksum} ({display(t.path)})"
            for t in templates
            if t.key not in locked
        ]
        write_lock_file(self.lock_path, {**locked, **{t.key: t.checksum for t in templates}})
        return added
