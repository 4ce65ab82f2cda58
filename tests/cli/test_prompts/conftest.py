"""The `aicli test-prompts` tests' fixture: `people`, a config and the people suite the test
server answers correctly."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.test_prompts.helpers import PEOPLE, person_answer, write


@pytest.fixture
def people(server: Any, make_config: Any) -> Any:
    make_config()
    write("prompts/people.test.yaml", PEOPLE)
    server.set_answer("*", person_answer)
    return server
