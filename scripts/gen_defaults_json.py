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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _generated import write_or_check  # noqa: E402

from aicli import yamlsafe  # noqa: E402
from aicli.config import DEFAULTS_FILE, DEFAULTS_JSON  # noqa: E402


def build() -> str:
    data = yamlsafe.load(yamlsafe.read_text(DEFAULTS_FILE))
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    check = "--check" in sys.argv[1:]
    remedy = "python scripts/gen_defaults_json.py"
    return write_or_check(DEFAULTS_JSON, build(), check=check, remedy=remedy)


if __name__ == "__main__":
    sys.exit(main())
