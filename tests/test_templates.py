"""aicli.templates as a library: semver, checksums, variable sources, the store API, the sandbox."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from aicli.errors import TemplateError, UsageError
from aicli.templates import (
    Rendered,
    TemplateStore,
    collect_variables,
    load_vars_file,
    parse_var_args,
    render,
    render_inline,
    semver_key,
)
from aicli.templates.model import checksum
from aicli.types import TemplateRef


def write(root: Path, rel: str, **fields: Any) -> Path:
    data: dict[str, Any] = {"name": "greet", "version": "1.0.0", "template": "Hello {{ who }}!"}
    data.update(fields)
    data.setdefault("variables", {"who": {"type": "string"}})
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_semver_precedence() -> None:
    ordered = [
        "0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
        "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.9.0", "1.10.0",
        "2.0.0",
    ]  # fmt: skip
    assert sorted(reversed(ordered), key=semver_key) == ordered
    with pytest.raises(ValueError):
        semver_key("1.0")


def test_checksum_is_12_hex_and_covers_content_only() -> None:
    base = checksum("T {{ a }}", "S", {"a": {"type": "string", "default": "x"}}, {})
    assert len(base) == 12 and int(base, 16) >= 0
    same = checksum("T {{ a }}", "S", {"a": {"default": "x", "type": "string"}}, {})
    assert same == base
    assert checksum("T {{ a }} ", "S", {"a": {"type": "string", "default": "x"}}, {}) != base
    assert checksum("T {{ a }}", None, {"a": {"type": "string", "default": "x"}}, {}) != base
    assert checksum("T {{ a }}", "S", {"a": {"type": "string", "default": "y"}}, {}) != base
    assert checksum("T {{ a }}", "S", {"a": {"type": "string", "default": "x"}}, {"f": ""}) != base


def test_description_and_tier_do_not_change_the_checksum(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml")
    one = TemplateStore(tmp_path).get("greet").checksum
    write(tmp_path, "a.yaml", description="new words", tier="economy")
    assert TemplateStore(tmp_path).get("greet").checksum == one


def test_parse_var_args() -> None:
    values = parse_var_args(["a=1", "b=x y", 'c={"k": [1, 2]}', "d=", "e=NaN", "f=a=b", "g=null"])
    assert values == {
        "a": 1, "b": "x y", "c": {"k": [1, 2]}, "d": "", "e": "NaN", "f": "a=b", "g": None,
    }  # fmt: skip
    for bad in ("noequals", "=v", "bad key=1", "1x=2"):
        with pytest.raises(UsageError):
            parse_var_args([bad])


def test_collect_variables_precedence(tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("input: file\nx: 1\n", encoding="utf-8")
    assert collect_variables([], None, "piped\n\n") == {"input": "piped"}
    assert collect_variables([], f, "piped") == {"input": "file", "x": 1}
    assert collect_variables(["input=var", "x=2"], f, "piped") == {"input": "var", "x": 2}
    assert collect_variables(["y=1"], None, None) == {"y": 1}


def test_load_vars_file_errors_name_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert load_vars_file(empty) == {}
    dated = tmp_path / "d.yaml"
    dated.write_text("when: 2024-01-02\n", encoding="utf-8")
    assert load_vars_file(dated) == {"when": "2024-01-02"}  # dates stay text, like JSON
    with pytest.raises(UsageError, match=r"nope\.json"):
        load_vars_file(tmp_path / "nope.json")


def test_rendered_messages() -> None:
    ref = TemplateRef("a", "1.0.0", "abc")
    assert Rendered("sys", "hi", ref).messages() == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
    ]
    assert Rendered(None, "hi", None).messages() == [{"role": "user", "content": "hi"}]


def test_render_returns_ref_and_trims_trailing_whitespace(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", system="{% if false %}x{% endif %}  \n", template="Hi {{ who }}\n\n")
    tpl = TemplateStore(tmp_path).get("greet")
    out = render(tpl, {"who": "Ann"})
    assert out == Rendered(None, "Hi Ann", tpl.ref)
    assert tpl.ref == TemplateRef("greet", "1.0.0", tpl.checksum)


def test_defaults_are_applied_and_not_shared(tmp_path: Path) -> None:
    variables = {"items": {"type": "array", "default": ["a"]}}
    write(tmp_path, "a.yaml", template="{{ items | join(',') }}", variables=variables)
    tpl = TemplateStore(tmp_path).get("greet")
    assert render(tpl, {}).prompt == "a"
    assert tpl.variables["items"]["default"] == ["a"]


def test_empty_rendered_prompt_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", template="{% if who %}x{% endif %}")
    with pytest.raises(TemplateError, match="rendered prompt is empty"):
        render(TemplateStore(tmp_path).get("greet"), {"who": ""})


def test_store_is_lazy_and_sorted(tmp_path: Path) -> None:
    store = TemplateStore(tmp_path / "later")
    (tmp_path / "later").mkdir()
    write(tmp_path / "later", "b.yaml", name="b", version="1.10.0")
    write(tmp_path / "later", "c.yaml", name="b", version="1.9.0")
    write(tmp_path / "later", "a.yaml", name="a")
    assert [t.key for t in store.all()] == ["a@1.0.0", "b@1.9.0", "b@1.10.0"]


def test_store_get_on_an_empty_or_missing_folder(tmp_path: Path) -> None:
    assert TemplateStore(tmp_path / "nope").all() == []
    with pytest.raises(TemplateError, match="does not exist"):
        TemplateStore(tmp_path / "nope").get("x")
    with pytest.raises(TemplateError, match="has no templates"):
        TemplateStore(tmp_path).get("x")


def test_lock_api(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml")
    store = TemplateStore(tmp_path, check_lock=False)
    assert store.lock_problems() == [] and store.lock_status() == {"greet@1.0.0": "new"}
    added = store.write_lock()
    assert len(added) == 1 and added[0].startswith("added greet@1.0.0")
    assert TemplateStore(tmp_path, check_lock=False).write_lock() == []
    write(tmp_path, "a.yaml", template="changed {{ who }}")
    assert TemplateStore(tmp_path).lock_problems()[0].startswith("greet@1.0.0")
    with pytest.raises(TemplateError, match="bump the version"):
        TemplateStore(tmp_path).get("greet")
    with pytest.raises(TemplateError, match="bump the version"):
        TemplateStore(tmp_path).all()
    relaxed = TemplateStore(tmp_path, check_lock=False)
    assert relaxed.get("greet").template == "changed {{ who }}"
    assert relaxed.lock_status() == {"greet@1.0.0": "changed"}


def test_lock_checksums_that_look_like_numbers_survive(tmp_path: Path) -> None:
    (tmp_path / "prompts.lock").write_text('a@1.0.0: "001234567890"\n', encoding="utf-8")
    assert TemplateStore(tmp_path).read_lock() == {"a@1.0.0": "001234567890"}


def test_render_inline_strict_undefined_and_free_variables(tmp_path: Path) -> None:
    out = render_inline(
        "Hi {{ name }}{% if extra is defined %}!{% endif %}", {"name": "A"}, base_dir=tmp_path
    )
    assert out == Rendered(None, "Hi A", None)
    with pytest.raises(TemplateError, match="'nme' is undefined"):
        render_inline("Hi {{ nme }}", {"name": "A"}, base_dir=tmp_path)


def test_render_inline_includes_stay_in_base_dir(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "part.txt").write_text("part {{ x }}", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    base = tmp_path / "base"
    assert render_inline("{% include 'part.txt' %}", {"x": 1}, base_dir=base).prompt == "part 1"
    with pytest.raises(TemplateError, match="not allowed"):
        render_inline("{% include '../secret.txt' %}", {}, base_dir=base)


def test_tojson_is_plain_json() -> None:
    out = render_inline("{{ v | tojson }}", {"v": {"a": "<b> & é"}}, base_dir=Path("."))
    assert out.prompt == '{"a": "<b> & é"}'


def test_big_inputs_raise_the_output_limit(tmp_path: Path) -> None:
    big = "x" * 1_500_000
    assert len(render_inline("{{ t }}", {"t": big}, base_dir=tmp_path).prompt) == 1_500_000


def test_trace_is_restored_and_threads_render_independently(tmp_path: Path) -> None:
    before = sys.gettrace()
    write(tmp_path, "a.yaml", template="{% for i in range(n) %}{{ who }}{% endfor %}",
          variables={"who": {"type": "string"}, "n": {"type": "integer"}})  # fmt: skip
    tpl = TemplateStore(tmp_path).get("greet")
    results: dict[int, str] = {}

    def work(i: int) -> None:
        results[i] = render(tpl, {"who": str(i), "n": 50}).prompt

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: str(i) * 50 for i in range(8)}
    assert sys.gettrace() is before
    with pytest.raises(TemplateError):
        render_inline("{{ 'x' * 10**9 }}", {}, base_dir=tmp_path)
    assert sys.gettrace() is before


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ('a'*1000)|replace('a', 'b'*100000) }}",
        "{{ ('a'*1000).replace('a', 'b'*100000) }}",
        "{{ range(100000)|join('x'*100000) }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ ('\t' * 1000).expandtabs(999999) }}",
        "{% set ns = namespace(s='xx') %}"
        "{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    ],
)
def test_memory_and_recursion_bombs_are_stopped(tmp_path: Path, payload: str) -> None:
    with pytest.raises(TemplateError) as info:
        render_inline(payload, {}, base_dir=tmp_path)
    assert "0x" not in info.value.message and "<" not in info.value.message


def test_render_inline_with_a_system_prompt(tmp_path: Path) -> None:
    out = render_inline("Q: {{ q }}", {"q": "why", "p": "a pirate"}, base_dir=tmp_path,
                        system="You are {{ p }}.")  # fmt: skip
    assert out.messages() == [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Q: why"},
    ]


def test_names_set_before_an_include_count_as_defined(tmp_path: Path) -> None:
    (tmp_path / "part.txt").write_text("[{{ title }}] {{ who }}", encoding="utf-8")
    write(tmp_path, "a.yaml", template="{% set title = 'T' %}{% include 'part.txt' %}")
    assert render(TemplateStore(tmp_path).get("greet"), {"who": "x"}).prompt == "[T] x"
    (tmp_path / "part.txt").write_text("{{ nope }}", encoding="utf-8")
    with pytest.raises(TemplateError, match="undeclared variable 'nope'"):
        TemplateStore(tmp_path).get("greet")


def test_an_existing_tracer_keeps_working_during_a_render(tmp_path: Path) -> None:
    seen: list[str] = []

    def tracer(frame: Any, event: str, arg: Any) -> None:
        seen.append(frame.f_code.co_name)

    sys.settrace(tracer)
    try:
        render_inline("{{ x | upper }}", {"x": "a"}, base_dir=tmp_path)
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(None)
    assert "do_upper" in seen


# ---- broken files are isolated per name ------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def aicli_log() -> Any:
    logger = logging.getLogger("aicli")
    handler = _Records()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def test_a_broken_name_fails_alone_with_its_own_error(tmp_path: Path) -> None:
    write(tmp_path, "greet.yaml")
    write(tmp_path, "bad-1.yaml", name="bad", template="{{ y }}")
    write(tmp_path, "bad-2.yaml", name="bad", version="2.0.0")  # fine, but its name is broken
    store = TemplateStore(tmp_path)
    assert store.get("greet").key == "greet@1.0.0"
    for ref in ("bad", "bad@1.0.0", "bad@2.0.0"):
        with pytest.raises(TemplateError, match="uses undeclared variable 'y'") as info:
            store.get(ref)
        assert info.value.hint and "declare it" in info.value.hint
    assert [t.key for t in store.all()] == ["bad@2.0.0", "greet@1.0.0"]
    [problem] = store.problems()
    assert problem.name == "bad" and problem.path == tmp_path / "bad-1.yaml"


def test_files_without_a_known_name_warn_once_and_explain_unknown_names(
    tmp_path: Path, aicli_log: list[str]
) -> None:
    write(tmp_path, "greet.yaml")
    (tmp_path / "a.yaml").write_bytes(b"name: a\ntemplate: caf\xe9\n")
    (tmp_path / "summary.yaml").write_text("name: summary\ntemplate: [x\n", encoding="utf-8")
    store = TemplateStore(tmp_path)
    assert [p.name for p in store.problems()] == [None, None]
    store.get("greet")
    store.get("greet@1.0.0")
    assert len(aicli_log) == 2 and "a.yaml" in aicli_log[0] and "not UTF-8" in aicli_log[0]
    assert "summary.yaml" in aicli_log[1] and "invalid YAML" in aicli_log[1]
    with pytest.raises(TemplateError) as info:
        store.get("summary")
    message = info.value.message
    assert message.startswith("unknown template 'summary'")
    # the file named like the template is the one shown first
    assert "2 template files could not be loaded: " in message
    assert message.index("summary.yaml") < message.index("and 1 more")
    assert len(aicli_log) == 2  # a failed lookup explains itself instead of warning again


def test_only_broken_files_is_not_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("name: x\ntemplate: [\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"could not be loaded: .*invalid YAML") as info:
        TemplateStore(tmp_path).get("x")
    assert "has no templates" not in info.value.message
    assert info.value.hint and "render --list" in info.value.hint


def test_duplicates_break_the_name_and_are_never_locked(tmp_path: Path) -> None:
    write(tmp_path, "one/g.yaml")
    write(tmp_path, "two/g.yaml", template="Hi {{ who }}")
    write(tmp_path, "g2.yaml", version="2.0.0")
    write(tmp_path, "other.yaml", name="other")
    store = TemplateStore(tmp_path, check_lock=False)
    with pytest.raises(TemplateError, match=r"greet@1\.0\.0 is defined twice"):
        store.get("greet@2.0.0")
    assert store.get("other").name == "other"
    store.write_lock()
    assert set(store.read_lock()) == {"greet@2.0.0", "other@1.0.0"}


def test_lock_error_names_every_changed_version(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", name="a")
    write(tmp_path, "b.yaml", name="b")
    write(tmp_path, "c.yaml", name="c")
    TemplateStore(tmp_path).write_lock()
    write(tmp_path, "a.yaml", name="a", template="A {{ who }}")
    write(tmp_path, "b.yaml", name="b", template="B {{ who }}")
    store = TemplateStore(tmp_path)
    with pytest.raises(TemplateError, match="bump the version") as info:
        store.get("c")  # a mismatch anywhere stops template commands
    assert info.value.message.startswith("a@1.0.0 (")
    assert "also changed: b@1.0.0" in info.value.message
