"""Finding templates under prompts_dir, resolving NAME[@VERSION], and the checksum lock file."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from aicli.errors import TemplateError
from aicli.templates.model import (
    VERSION_RE,
    Template,
    checksum,
    display,
    is_prerelease,
    load_yaml,
    read_template_file,
    semver_key,
)
from aicli.templates.sandbox import analyze

LOCK_NAME = "prompts.lock"
SKIP_DIRS = {"node_modules", "__pycache__", "venv"}
LOCK_HEADER = """\
# aicli prompt lock: the checksum of every released template version (name@version: checksum).
# A locked version must never change. To edit a template, add a new version (a new file with a
# higher `version:`), then run `aicli render --lock` to record it, and commit this file.
"""


def build_template(path: Path, root: Path) -> Template | None:
    """Load and vet one file: schema, Jinja syntax, includes, declared names, checksum."""
    fields = read_template_file(path, root)
    if fields is None:
        return None
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


class TemplateStore:
    """Every template version under one prompts folder, loaded on first use."""

    def __init__(self, prompts_dir: Path, *, check_lock: bool = True) -> None:
        self.prompts_dir = Path(prompts_dir)
        self.check_lock = check_lock
        self._templates: list[Template] | None = None
        self._lock_ok = False

    @property
    def lock_path(self) -> Path:
        return self.prompts_dir / LOCK_NAME

    def _discover(self) -> list[Template]:
        if self._templates is not None:
            return self._templates
        templates: list[Template] = []
        seen: dict[str, Template] = {}
        if self.prompts_dir.is_dir():
            for path in _candidates(self.prompts_dir):
                tpl = build_template(path, self.prompts_dir)
                if tpl is None:
                    continue
                if tpl.key in seen:
                    other = display(seen[tpl.key].path)
                    raise TemplateError(
                        f"{tpl.key} is defined twice: in {other} and in {display(path)}",
                        "give one of them a new version",
                    )
                seen[tpl.key] = tpl
                templates.append(tpl)
        templates.sort(key=lambda t: (t.name, semver_key(t.version)))
        self._templates = templates
        return templates

    def _load(self) -> list[Template]:
        templates = self._discover()
        if self.check_lock and not self._lock_ok:
            problems = self.lock_problems()
            if problems:
                raise TemplateError(problems[0], self._bump_hint())
            self._lock_ok = True
        return templates

    def _bump_hint(self) -> str:
        return (
            "a released version must not change: put the edit in a new version; if it was never "
            f"released, delete its line from {display(self.lock_path)} and rerun "
            "`aicli render --lock`"
        )

    def all(self) -> list[Template]:
        """Every template version, sorted by name and then by semver."""
        return list(self._load())

    def versions(self, name: str) -> list[Template]:
        return [t for t in self._load() if t.name == name]

    def get(self, ref: str) -> Template:
        """`NAME` -> its highest released version (pre-releases only if there is nothing else);
        `NAME@X.Y.Z` -> exactly that version."""
        name, sep, version = ref.strip().partition("@")
        if sep and not VERSION_RE.match(version):
            raise TemplateError(
                f"'{ref}': version '{version}' is not semver X.Y.Z", "e.g. extraction@1.2.0"
            )
        templates = self._load()
        if not templates:
            where = display(self.prompts_dir)
            state = "does not exist" if not self.prompts_dir.is_dir() else "has no templates"
            raise TemplateError(
                f"unknown template '{name}': the prompts folder {where} {state}",
                "set prompts_dir in aicli.yaml (relative to that file) or add NAME.yaml there",
            )
        versions = [t for t in templates if t.name == name]
        if not versions:
            names = sorted({t.name for t in templates})
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(close)}?" if close else None
            raise TemplateError(
                f"unknown template '{name}' in {display(self.prompts_dir)}",
                hint or f"available: {', '.join(names)} (see `aicli render --list`)",
            )
        if not sep:
            released = [t for t in versions if not is_prerelease(t.version)]
            return (released or versions)[-1]
        for tpl in versions:
            if tpl.version == version:
                return tpl
        raise TemplateError(
            f"template '{name}' has no version {version}",
            f"available: {', '.join(t.version for t in versions)}",
        )

    # ---- the lock ----------------------------------------------------------------------------

    def read_lock(self) -> dict[str, str]:
        """name@version -> checksum as recorded; a missing lock file records nothing."""
        path = self.lock_path
        where = display(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError):
            raise TemplateError(f"{where}: cannot read the lock file") from None
        data = load_yaml(text, where)
        if data is None:
            return {}
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise TemplateError(
                f"{where}: expected lines of `name@version: checksum`",
                "regenerate it with `aicli render --lock`",
            )
        return data

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

    def lock_problems(self) -> list[str]:
        """One message per locked version whose content no longer matches its checksum."""
        locked = self.read_lock()
        templates = self._discover()
        return [
            f"{tpl.key} ({display(tpl.path)}) changed since it was locked "
            f"(checksum {locked[tpl.key]} -> {tpl.checksum}): bump the version instead of "
            "editing a released one"
            for tpl in templates
            if tpl.key in locked and locked[tpl.key] != tpl.checksum
        ]

    def write_lock(self) -> list[str]:
        """Record every version not locked yet; returns what was added. Refuses changed ones."""
        templates = self._discover()
        problems = self.lock_problems()
        if problems:
            raise TemplateError(problems[0], self._bump_hint())
        if not templates and not self.prompts_dir.is_dir():
            raise TemplateError(f"the prompts folder {display(self.prompts_dir)} does not exist")
        locked = self.read_lock()
        added = [
            f"added {t.key}: {t.checksum} ({display(t.path)})"
            for t in templates
            if t.key not in locked
        ]
        entries = dict(locked)
        entries.update({t.key: t.checksum for t in templates})

        def order(key: str) -> tuple[object, ...]:
            name, _, version = key.partition("@")
            try:
                return (name, 0, semver_key(version))
            except ValueError:
                return (name, 1, version)

        body = "".join(f'{key}: "{entries[key]}"\n' for key in sorted(entries, key=order))
        text = LOCK_HEADER + body
        try:
            if not self.lock_path.exists() or self.lock_path.read_text(encoding="utf-8") != text:
                tmp = self.lock_path.with_name(f".{LOCK_NAME}.tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, self.lock_path)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise TemplateError(f"cannot write {display(self.lock_path)}: {reason}") from None
        return added
