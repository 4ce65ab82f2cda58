"""TemplateStore.get vets (Jinja-parses) only the files it needs, with the outcome a store that
vets every file gives: the same template, the same error, the same global lock check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aicli.errors import TemplateError
from aicli.templates import TemplateStore
from aicli.templates import store as store_module
from aicli.templates.sandbox import may_include


def write(root: Path, rel: str, **fields: Any) -> Path:
    data: dict[str, Any] = {"name": "greet", "version": "1.0.0", "template": "Hello {{ who }}!"}
    data.update(fields)
    data.setdefault("variables", {"who": {"type": "string"}})
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def outcome(store: TemplateStore, ref: str) -> tuple[str, ...]:
    try:
        tpl = store.get(ref)
    except TemplateError as exc:
        return ("error", exc.message, exc.hint or "")
    return ("ok", tpl.key, tpl.checksum, str(tpl.path), repr(sorted(tpl.includes)))


def vetted_first(root: Path) -> TemplateStore:
    store = TemplateStore(root)
    store.problems()  # vets every file before any lookup: the eager way
    return store


@pytest.fixture
def analyzed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the store Jinja-parses, in order."""
    seen: list[str] = []
    real = store_module.analyze

    def spy(sources: Any, root: Any, where: str) -> Any:
        seen.append(Path(where).name)
        return real(sources, root, where)

    monkeypatch.setattr(store_module, "analyze", spy)
    return seen


def test_a_lookup_parses_only_its_own_files_and_the_uncertain_locked_ones(
    tmp_path: Path, analyzed: list[str]
) -> None:
    write(tmp_path, "a.yaml", name="a")
    write(tmp_path, "a2.yaml", name="a", version="2.0.0")
    write(tmp_path, "b.yaml", name="b")
    write(tmp_path, "c.yaml", name="c", template="{% include 'part.txt' %}", variables={})
    (tmp_path / "part.txt").write_text("part", encoding="utf-8")
    write(tmp_path, "d.yaml", name="d")  # never locked
    TemplateStore(tmp_path).write_lock()
    write(tmp_path, "b.yaml", name="b", template="Hi {{ who }}!")  # a locked version edited
    analyzed.clear()
    with pytest.raises(TemplateError, match="bump the version") as info:
        TemplateStore(tmp_path).get("a")
    assert info.value.message.startswith("b@1.0.0 (")
    # b: its checksum no longer matches; c: it includes a file, which the checksum covers
    assert sorted(analyzed) == ["b.yaml", "c.yaml"]
    write(tmp_path, "b.yaml", name="b")  # back as locked
    analyzed.clear()
    assert TemplateStore(tmp_path).get("a").version == "2.0.0"
    assert sorted(analyzed) == ["a.yaml", "a2.yaml", "c.yaml"]
    (tmp_path / "part.txt").write_text("changed part", encoding="utf-8")
    with pytest.raises(TemplateError, match="bump the version") as info:
        TemplateStore(tmp_path).get("d")
    assert info.value.message.startswith("c@1.0.0 (")


def test_lazy_and_eager_lookups_agree(tmp_path: Path) -> None:
    write(tmp_path, "greet/1.0.0.yaml")
    write(tmp_path, "greet/1.1.0.yaml", version="1.1.0", template="Hi {{ who }}")
    write(tmp_path, "greet/2.0.0-rc.1.yaml", version="2.0.0-rc.1")
    write(tmp_path, "twice/a.yaml", name="twice")
    write(tmp_path, "twice/b.yaml", name="twice")  # the same version twice
    write(tmp_path, "undeclared.yaml", name="undeclared", template="{{ nope }}")
    write(tmp_path, "bad-schema.yaml", name="bad-schema", version="1.0")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    write(tmp_path, "inc.yaml", name="inc", template="{%- include 'part.txt' %}", variables={})
    (tmp_path / "part.txt").write_text("part", encoding="utf-8")
    write(tmp_path, "locked.yaml", name="locked")
    write(tmp_path, "gone.yaml", name="gone")
    TemplateStore(tmp_path, check_lock=False).write_lock()
    write(tmp_path, "gone.yaml", name="gone", template="{{ nope }}")  # locked, now broken
    refs = [
        "greet", "greet@1.0.0", "greet@2.0.0-rc.1", "greet@9.9.9", "twice", "undeclared",
        "bad-schema", "inc", "locked", "gone", "grete", "nothing", "greet@1.0",
    ]  # fmt: skip
    for ref in refs:
        assert outcome(TemplateStore(tmp_path), ref) == outcome(vetted_first(tmp_path), ref), ref
    # a locked version that changed stops every lookup, in both ways alike
    write(tmp_path, "locked.yaml", name="locked", template="Yo {{ who }}")
    (tmp_path / "part.txt").write_text("new part", encoding="utf-8")
    for ref in refs[:-1]:  # (greet@1.0 is refused as a version before any lookup)
        lazy, eager = outcome(TemplateStore(tmp_path), ref), outcome(vetted_first(tmp_path), ref)
        assert lazy == eager and "bump the version" in lazy[1], ref
        assert "inc@1.0.0" in lazy[1] and "locked@1.0.0" in lazy[1]


@pytest.mark.parametrize(
    ("source", "includes"),
    [
        ("Hello {{ who }} from {{ where }}", False),
        ("{# include nothing #}{{ imported }}", False),
        ("{% if x %}extends{% endif %}", False),
        ("{% include 'a.txt' %}", True),
        ("{%- import 'm.txt' as m %}", True),
        ("{%+ from 'm.txt' import x %}", True),
        ("{%\n  extends 'base.txt' %}", True),
        ("{% raw %}{% include 'x' %}{% endraw %}", True),  # may: then it is parsed
    ],
)
def test_may_include_is_never_wrong_about_a_file_that_includes(source: str, includes: bool) -> None:
    assert may_include(source) is includes
