"""What the `aicli test-prompts` tests share: writing files, a suite of many cases, the people
suite and its answers, the last line of a run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

PEOPLE = """\
suite: people
prompt: "Extract the person as JSON: {{ text }}"
cases:
  - name: ada
    vars: {text: "Ada Lovelace, 36"}
    assert:
      - is-json
      - {type: structure, value: {name: string, age: integer}}
      - {type: icontains, value: lovelace}
  - name: alan
    vars: {text: "Alan Turing, 41"}
    assert:
      - is-json
      - {type: structure, value: {name: string, age: integer}}
"""


def write(path: str | Path, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def last_line(stdout: str) -> str:
    return stdout.rstrip("\n").splitlines()[-1]


def person_answer(body: dict[str, Any]) -> str:
    text = body["messages"][-1]["content"].split(": ", 1)[1]
    name, age = text.rsplit(", ", 1)
    return json.dumps({"name": name, "age": int(age)})


def many_cases(n: int, *, tier: str | None = None, suite: str = "many") -> str:
    head = f"suite: {suite}\nprompt: 'number {{{{ i }}}}'\n" + (f"tier: {tier}\n" if tier else "")
    check = "[{type: contains, value: 'number %d'}]"
    cases = "".join(
        f"  - {{name: c{i:03d}, vars: {{i: {i}}}, assert: {check % i}}}\n" for i in range(n)
    )
    return head + "cases:\n" + cases
