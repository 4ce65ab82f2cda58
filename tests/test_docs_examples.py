"""Every code block of the README and the docs site that a user would paste is run, so the docs
cannot drift from the product.

Each page runs in a fresh folder (a copy of prompts/, a few input files, a git repository with a
staged change), its blocks in order:
- `sh` in bash against the OpenAI-compatible test server ($OPENAI_BASE_URL points at it, replays
  of the shipped recording excepted); `aicli serve` lines start in the background on a free port
  (`8000` in the block means that port); every command must exit 0 (or a code the block's
  `<!-- exit: ... -->` allows) and print no traceback;
- `python` against an `aicli serve` with the tokens tok-app1,tok-app2;
- `yaml` through aicli's own loaders: a suite (`suite:` or `cases:`), a template (`template:` and
  `version:`), else a config file; `json` through json.loads; `text` is output, never run.
An HTML comment on the line before a fence marks it: `<!-- not-run: reason -->` (it cannot run
here; the reason is required), `<!-- exit: 0 1 -->`, `<!-- file: PATH -->` (saved as PATH for
the blocks after it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI, echo_answer
from tests.helpers import REPO_ROOT
from tests.serve_process import free_port

PAGES = [
    REPO_ROOT / "README.md",
    *sorted(
        p
        for p in (REPO_ROOT / "docs").rglob("*.md")
        if "_pending" not in p.parts and p.name != "cli.md"  # cli.md: --help output, generated
    ),
]
RUN = {"sh", "bash", "python", "yaml", "json"}
OUTPUT = {"text"}
MARKER = re.compile(r"<!--\s*(not-run|exit|file):\s*(.*?)\s*-->", re.DOTALL)
SERVE = re.compile(r"^((?:[A-Z_][A-Z0-9_]*=\S*\s+)*)aicli serve\b(.*)$")
PERSON = {"name": "Ada Lovelace", "age": 36}
BLOCK_SECONDS = 180


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.page.relative_to(REPO_ROOT)}:{self.line} ({self.lang})"


def blocks(page: Path) -> list[Block]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8"))
    found: list[Block] = []
    for i, tok in enumerate(tokens):
        if tok.type not in ("fence", "code_block"):
            continue
        before = tokens[i - 1] if i and tokens[i - 1].type == "html_block" else None
        markers = dict(MARKER.findall(before.content)) if before is not None else {}
        line = (tok.map or [0])[0] + 1
        found.append(Block(page, line, tok.info.strip().split(" ")[0], tok.content, markers))
    return found


def _id(page: Path) -> str:
    return str(page.relative_to(REPO_ROOT))


# ---- what every block must declare ------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_block_is_run_or_says_why_not(page: Path) -> None:
    for block in blocks(page):
        assert block.lang, f"{block}: a code block must name its language (sh, yaml, text, ...)"
        if "not-run" in block.markers:
            assert len(block.markers["not-run"]) >= 10, f"{block}: not-run needs a reason"
            continue
        assert block.lang in RUN | OUTPUT, (
            f"{block}: `{block.lang}` blocks are not run by this test: mark it"
            " <!-- not-run: reason --> or use one of " + ", ".join(sorted(RUN | OUTPUT))
        )


def test_there_are_blocks_to_run() -> None:
    """A parser change that found no blocks would pass every page vacuously."""
    every = [b for p in PAGES for b in blocks(p)]
    ran = [b for b in every if "not-run" not in b.markers and b.lang in RUN]
    assert len(ran) >= 25, [str(b) for b in ran]
    assert {b.lang for b in ran} >= {"sh", "yaml", "python"}


# ---- running a page ----------------------------------------------------------------------------


@pytest.fixture
def page_dir(tmp_path: Path) -> Path:
    """The folder a reader would run the examples in."""
    work = tmp_path / "page"
    shutil.copytree(REPO_ROOT / "prompts", work / "prompts")
    (work / "notes.txt").write_text(
        "The quarterly review moved to Thursday. Budget requests are due on Monday; the new\n"
        "hire, Ada, starts next week and needs a laptop. The office is closed on Friday.\n",
        encoding="utf-8",
    )
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    (work / "person.json").write_text(json.dumps(schema), encoding="utf-8")
    (work / "vars.yaml").write_text(
        "fields:\n  - {name: company, description: Company name}\n"
        "  - {name: location, description: Where it is based}\n",
        encoding="utf-8",
    )
    git = shutil.which("git")
    assert git, "the docs examples need git (git diff --staged | aicli generate ...)"
    subprocess.run([git, "init", "-q"], cwd=work, check=True)
    (work / "greet.py").write_text('print("hello, world")\n', encoding="utf-8")
    subprocess.run([git, "add", "greet.py"], cwd=work, check=True)
    return work


def _shims(where: Path) -> Path:
    """`aicli` as the reader has it (this checkout, this interpreter); `curl` failing on an HTTP
    error status; `jq` when none is installed: the field access (`jq .key`, `jq -r`,
    `jq length`) the docs use."""
    where.mkdir()
    aicli = where / "aicli"
    aicli.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m aicli "$@"\n', encoding="utf-8")
    aicli.chmod(0o755)
    curl = shutil.which("curl")
    if curl:  # an HTTP error status fails the command, as a reader would notice it
        shim = where / "curl"
        shim.write_text(f'#!/bin/sh\nexec "{curl}" --fail-with-body "$@"\n', encoding="utf-8")
        shim.chmod(0o755)
    if shutil.which("jq") is None:
        jq = where / "jq"
        jq.write_text(f"#!{sys.executable}\n{_JQ}", encoding="utf-8")
        jq.chmod(0o755)
    return where


_JQ = """import json, re, sys
args = [a for a in sys.argv[1:] if a != "-r"]
raw = "-r" in sys.argv[1:]
value = json.load(sys.stdin)
values = [value]
for part in re.findall(r"\\.(\\w+)?(\\[\\])?", args[0] if args else "."):
    if args and args[0] == "length":
        break
    values = [v[part[0]] if part[0] else v for v in values]
    if part[1]:
        values = [x for v in values for x in v]
if args and args[0] == "length":
    values = [len(value)]
for v in values:
    print(v if raw and isinstance(v, str) else json.dumps(v))
"""

_PRELUDE = """set -o pipefail
__pids=()
__stop() { for p in "${__pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap __stop EXIT
__check() {
  case " $__ALLOWED " in *" $1 "*) ;;
    *) echo "DOCS-EXAMPLE FAILED (exit $1): $2" >&2; exit 99 ;; esac
}
__wait() {
  for _ in $(seq 200); do
    curl -s -o /dev/null "http://127.0.0.1:$1/health/live" && return 0; sleep 0.1
  done
  echo "DOCS-EXAMPLE FAILED: aicli serve did not answer on port $1" >&2; exit 98
}
"""


def commands(text: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comment lines dropped."""
    out: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line + "\n"
            continue
        out.append(pending + line)
        pending = ""
    assert not pending, f"a continued line has no end: {pending!r}"
    return out


def _serve(assigns: str, rest: str, port: int) -> str:
    rest = rest.replace("0.0.0.0", "127.0.0.1")  # the tests never listen on every interface
    if "--port" not in rest:
        rest = f" --port {port}{rest}"
    return f"(\n{assigns}exec aicli serve{rest}\n) &\n__pids+=($!)\n__wait {port}\n"


def script(block: Block, port: int) -> str:
    text = re.sub(r"(?<=[:\s])8000\b", str(port), block.text)
    parts = [_PRELUDE]
    if block.lang == "python":
        parts.append(_serve("AICLI_SERVE_TOKENS=tok-app1,tok-app2 ", "", port))
        parts.append(f"\"{sys.executable}\" - <<'__DOCS_PY__'\n{text}__DOCS_PY__\n")
        parts.append("__check $? 'the python block'\n")
        return "".join(parts)
    for cmd in commands(text):
        serve = SERVE.match(cmd.strip())
        if serve:
            parts.append(_serve(serve.group(1), serve.group(2), port))
            continue
        if "--replay prompts/recordings/" in cmd:  # replay keys hold the endpoint: the real one
            cmd = f"(\nunset OPENAI_BASE_URL\n{cmd}\n)"
        parts.append(f"{cmd}\n__check $? {shlex.quote(cmd)}\n")
    return "".join(parts)


def run_shell(block: Block, work: Path, env: dict[str, str]) -> None:
    allowed = block.markers.get("exit", "0").split("(")[0].split()
    proc = subprocess.Popen(
        ["bash", "-c", script(block, free_port())],
        cwd=work,
        env={**env, "__ALLOWED": " ".join(allowed)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a hung example's `aicli serve` goes down with it
    )
    try:
        out, err = proc.communicate(timeout=BLOCK_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{block} did not finish in {BLOCK_SECONDS} s\n{out}\n{err}")
    shown = f"{block}\n--- stdout ---\n{out[-3000:]}\n--- stderr ---\n{err[-3000:]}"
    assert proc.returncode == 0, shown
    assert "Traceback (most recent call last)" not in err, shown
    assert "this is a bug" not in err, shown


def check_yaml(block: Block, work: Path, n: int) -> None:
    from aicli import yamlsafe
    from aicli.config import load_config
    from aicli.suites.load import validate_against_templates
    from aicli.suites.parse import load_suite_file
    from aicli.templates.store import TemplateStore

    data: Any = yamlsafe.load(block.text)
    assert isinstance(data, dict), f"{block}: not a mapping"
    target = block.markers.get("file")
    if "suite" in data or "cases" in data:
        path = work / (target or f"docs-example-{n}.test.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text, encoding="utf-8")
        suite = load_suite_file(path)
        validate_against_templates([suite], TemplateStore(work / "prompts"))
        if not target:
            path.unlink()
    elif "template" in data and "version" in data:
        root = work.parent / f"templates-{n}"
        path = root / str(data["name"]) / f"{data['version']}.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(block.text, encoding="utf-8")
        TemplateStore(root, check_lock=False).get(f"{data['name']}@{data['version']}")
    else:
        path = work.parent / f"config-{n}" / "aicli.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(block.text, encoding="utf-8")
        load_config(path)
        if target:
            (work / target).write_text(block.text, encoding="utf-8")


def _answer(body: dict[str, Any]) -> str:
    """An echo of the prompt, and a person as JSON when a schema is asked for (--schema)."""
    return json.dumps(PERSON) if body.get("response_format") else echo_answer(body)


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_the_examples_of_a_page_run(
    page: Path, page_dir: Path, server: FakeOpenAI, tmp_path: Path
) -> None:
    for tool in ("bash", "curl"):
        assert shutil.which(tool), f"the docs examples need {tool}"
    server.set_answer("*", _answer)
    shims = _shims(tmp_path / "bin")
    env = {
        **os.environ,
        "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO_ROOT),
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-docs-example-key-0000",
        "COLUMNS": "100",
    }
    for n, block in enumerate(blocks(page)):
        if "not-run" in block.markers or block.lang in OUTPUT:
            continue
        if block.lang in ("sh", "bash", "python"):
            text = block.text.replace("http://localhost:11434/v1", server.base_url)
            run_shell(Block(page, block.line, block.lang, text, block.markers), page_dir, env)
        elif block.lang == "yaml":
            check_yaml(block, page_dir, n)
        elif block.lang == "json":
            json.loads(block.text)


def test_a_failing_example_fails_the_page(page_dir: Path, tmp_path: Path) -> None:
    """The harness itself: a command that exits non-zero, or one the block allows."""
    env = {**os.environ, "PATH": f"{_shims(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}"}
    broken = Block(REPO_ROOT / "README.md", 1, "sh", "echo ok\naicli generate --no-such-flag x\n")
    with pytest.raises(AssertionError, match=r"DOCS-EXAMPLE FAILED \(exit 2\)"):
        run_shell(broken, page_dir, env)
    allowed = Block(broken.page, 1, "sh", "aicli generate --no-such-flag x\n", {"exit": "0 2"})
    run_shell(allowed, page_dir, env)
    assert commands("a \\\n  b  # c\n# d\n\ne\n") == ["a \\\n  b  # c", "e"]
