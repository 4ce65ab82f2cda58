"""`aicli render` runs templates in a sandbox: hostile Jinja, loop and memory bombs, includes
that try to leave the prompts folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.cli.render.helpers import Prompts, fails, rendered, tpl
from tests.helpers import Isolated, cli, run_aicli

PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ ().__class__.__base__ }}",
    "{{ self }}",
    "{{ range }}",
    "{{ 'a'|attr('__class__') }}",
    "{{ '{0.__class__.__init__.__globals__}'.format('') }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{% set x = [].__class__ %}{{ x }}",
    "{{ 'x' * 10**9 }}",
    "{{ 'x'|center(10**9) }}",
    "{{ '%0999999999d'|format(1) }}",
]
FORBIDDEN_OUTPUT = ("<class", "<function", "object at", "Traceback", "uid=", "builtins", "0x")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sandbox_payloads_fail_and_print_nothing_from_python(
    prompts: Prompts, payload: str
) -> None:
    prompts("evil.yaml", tpl(name="evil", template=payload, variables={}))
    res = cli("render", "evil")
    assert res.exit_code == 2, res
    assert res.stdout == ""
    for bad in FORBIDDEN_OUTPUT:
        assert bad not in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) <= 2


def test_sandbox_payload_in_a_subprocess(prompts: Prompts) -> None:
    prompts("evil.yaml", tpl(name="evil", template=PAYLOADS[0], variables={}))
    res = run_aicli("render", "evil")
    assert res.exit_code == 2 and res.stdout == ""
    assert "blocked by the sandbox" in res.stderr and "<class" not in res.stderr


def test_loop_bomb_is_stopped(prompts: Prompts) -> None:
    bomb = "{% for x in range(100000) %}{% for y in range(100000) %}x{% endfor %}{% endfor %}"
    prompts("bomb.yaml", tpl(name="bomb", template=bomb, variables={}))
    start = time.monotonic()
    err = fails("bomb")
    assert time.monotonic() - start < 10
    assert "exceeds" in err or "longer than" in err


def test_silent_loop_bomb_hits_the_time_limit(prompts: Prompts) -> None:
    bomb = (
        "{% set l = range(100000)|list %}"
        "{% for x in l %}{% for y in l %}{% for z in l %}{% endfor %}{% endfor %}{% endfor %}"
    )
    prompts("bomb.yaml", tpl(name="bomb", template=bomb, variables={}))
    start = time.monotonic()
    assert "rendering took longer than 2 s" in fails("bomb")
    assert time.monotonic() - start < 10


def test_string_doubling_is_stopped_before_it_eats_memory(prompts: Prompts) -> None:
    bomb = (
        "{% set ns = namespace(s='xx') %}"
        "{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
    )
    prompts("bomb.yaml", tpl(name="bomb", template=bomb, variables={}))
    assert "limit" in fails("bomb")


@pytest.fixture
def outside(isolate: Isolated) -> Path:
    secret = isolate.work / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE", encoding="utf-8")
    return secret


@pytest.mark.parametrize(
    "include",
    ["../secret.txt", "/etc/passwd", "sub/../../secret.txt", "link.txt", "linkdir/secret.txt"],
)
def test_includes_cannot_leave_the_prompts_folder(
    prompts: Prompts, outside: Path, include: str
) -> None:
    root = prompts.root
    os.symlink(outside, root / "link.txt")
    os.symlink(outside.parent, root / "linkdir")
    (root / "sub").mkdir()
    prompts("evil.yaml", tpl(name="evil", template=f"{{% include '{include}' %}}", variables={}))
    res = cli("render", "evil")
    assert res.exit_code == 2 and res.stdout == ""
    assert "TOP-SECRET" not in res.stderr and "root:" not in res.stderr
    assert "include" in res.stderr


def test_computed_include_names_are_refused(prompts: Prompts) -> None:
    prompts("evil.yaml", tpl(name="evil", template="{% include who %}"))
    assert "needs a quoted file name" in fails("evil", "--var", "who=x.txt")


def test_includes_inside_the_folder_work_and_count_in_the_checksum(prompts: Prompts) -> None:
    prompts("parts/rules.txt", "Be brief, {{ who }}.")
    prompts("parts/macros.j2", "{% macro shout(s) %}{{ s | upper }}{% endmacro %}")
    text = "{% import 'parts/macros.j2' as m %}{{ m.shout('hi') }} {% include 'parts/rules.txt' %}"
    prompts("greet.yaml", tpl(template=text))
    first = rendered("greet", "--var", "who=Ann")
    assert first["prompt"] == "HI Be brief, Ann."
    prompts("parts/rules.txt", "Be thorough, {{ who }}.")
    second = rendered("greet", "--var", "who=Ann")
    assert second["prompt"] == "HI Be thorough, Ann."
    assert second["checksum"] != first["checksum"]


def test_template_file_symlinked_from_outside_is_refused(
    prompts: Prompts, isolate: Isolated
) -> None:
    real = isolate.work / "elsewhere.yaml"
    real.write_text(tpl(), encoding="utf-8")
    os.symlink(real, prompts.root / "greet.yaml")
    assert "points outside the prompts folder" in fails("greet", "--var", "who=x")
