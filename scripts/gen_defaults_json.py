"""Write aicli/defaults.json from aicli/defaults.yaml, so the built-in settings load without
a YAML parser (start-up time); a test fails when the two differ.

Usage: python scripts/gen_defaults_json.py          # rewrite aicli/defaults.json
       python scripts/gen_defaults_json.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aicli import yamlsafe  # noqa: E402
from aicli.config import DEFAULTS_FILE, DEFAULTS_JSON  # noqa: E402


def build() -> str:
    data = yamlsafe.load(yamlsafe.read_text(DEFAULTS_FILE))
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    text = build()
    if "--check" in sys.argv[1:]:
        current = DEFAULTS_JSON.read_text(encoding="utf-8") if DEFAULTS_JSON.exists() else ""
        if current != text:
            print(f"{DEFAULTS_JSON} is out of date: run python scripts/gen_defaults_json.py")
            return 1
        return 0
    DEFAULTS_JSON.write_text(text, encoding="utf-8")
    print(f"wrote {DEFAULTS_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
