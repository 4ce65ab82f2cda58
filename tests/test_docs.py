"""The generated references (docs/cli.md from --help, docs/config-reference.md from the settings)
are current, every setting has a description, the README stays short, and the site builds
strictly."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current() -> None:
    expected = _script("gen_cli_docs").build()
    actual = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"


def test_config_reference_is_current() -> None:
    expected = _script("gen_config_docs").build()
    actual = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert actual == expected, (
        "docs/config-reference.md is out of date: run python scripts/gen_config_docs.py"
    )


def test_every_setting_has_a_description() -> None:
    gen = _script("gen_config_docs")
    assert gen.undocumented() == [], (
        "write a docstring under each of these fields in aicli/settings.py"
    )
    # and the walk reaches every settings class the file can hold
    names = {cls.__name__ for cls in gen.settings_classes()}
    assert names >= {"ProviderConfig", "Defaults", "TierConfig", "Price", "CacheConfig"}
    assert {"RedactConfig", "BudgetConfig", "ServeConfig"} <= names


def test_every_key_is_on_the_reference_page() -> None:
    from aicli.config_schema import hints
    from aicli.settings import ConfigFile

    gen = _script("gen_config_docs")
    page = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    for cls in gen.settings_classes():
        for f in dataclasses.fields(cls):
            assert f"{f.name}`" in page, f"{cls.__name__}.{f.name} is not on the reference page"
    for name in hints(ConfigFile):  # each top-level key: a row or a section of its own
        assert f"| `{name}` |" in page or f"## `{name}`" in page, name


def test_a_field_without_a_description_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _script("gen_config_docs")
    docs = gen.field_docs()
    docs["CacheConfig"].pop("namespace")
    monkeypatch.setattr(gen, "field_docs", lambda: docs)
    assert gen.undocumented() == ["CacheConfig.namespace"]
    with pytest.raises(SystemExit, match=r"CacheConfig\.namespace"):
        gen.build()


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    page = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    read = set()
    for path in (ROOT / "aicli").rglob("*.py"):
        read |= set(re.findall(r"[\"']((?:AICLI|OPENAI)_[A-Z0-9_]+)[\"']", path.read_text("utf-8")))
    assert read, "no environment variables found: the pattern is wrong"
    missing = sorted(name for name in read if f"`{name}`" not in page and f"`${name}`" not in page)
    assert not missing, f"docs/config-reference.md does not name: {missing}"


def test_the_readme_stays_short_and_points_into_the_site() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 250
    assert "pip install -e . && aicli test-prompts --replay prompts/recordings/shipped.jsonl" in (
        readme
    )
    assert "pip install -e '.[test]' && python -m pytest" in readme
    assert "mkdocs serve" in readme
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), f"README links to a missing page: {link}"


def test_the_development_page_layout_names_every_module() -> None:
    """The long Layout lives on the Development page; like the README's, it names every module."""
    page = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    layout = page.split("## Layout", 1)[1].split("```", 2)[1]
    words = set(re.findall(r"[\w.]+", layout))
    package = ROOT / "aicli"
    missing = [
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if p.name != "__init__.py" and p.name not in words and p.stem not in words
    ]
    assert not missing, f"docs/development.md Layout does not mention: {missing}"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link or anchor, or a page missing from nav, fails."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mkdocs and mkdocs-material are missing: pip install -e '.[docs]'")
        pytest.skip("pip install -e '.[docs]' to build the site")
    # a copy, with a note of the kind other changes leave in docs/_pending/: never built
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("_pending"))
    (tmp_path / "docs" / "_pending").mkdir()
    (tmp_path / "docs" / "_pending" / "issue-0.md").write_text("[a link](nowhere.md)\n")
    out = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=tmp_path,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "search" / "search_index.json").is_file(), "the search index was not built"
    pages = {p.stem for p in (ROOT / "docs").glob("*.md")}
    built = {p.parent.name for p in out.glob("*/index.html")}
    assert pages - {"index"} <= built, pages - built
    assert not (out / "_pending").exists()
