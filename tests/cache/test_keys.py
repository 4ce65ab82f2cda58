"""cache_key: what changes the key of a request and what does not."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.cache.helpers import BASE, key

CHANGES: dict[str, Any] = {
    "base_url": "https://other.example.com/v1",
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Say hi"}],  # system message dropped
    "max_tokens": 101,
    "temperature": 0.4,
    "seed": 8,
    "schema": {"type": "object"},
    "template_checksum": "ba9876543210",
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_every_field_changes_the_key(field: str) -> None:
    assert key(**{field: CHANGES[field]}) != key()


@pytest.mark.parametrize(
    "field", ["max_tokens", "temperature", "seed", "schema", "template_checksum"]
)
def test_none_differs_from_a_value(field: str) -> None:
    assert key(**{field: None}) != key()


def test_message_details_change_the_key() -> None:
    msgs = BASE["messages"]
    variants = [
        [msgs[0], {"role": "user", "content": "Say hi!"}],  # content
        [msgs[0], {"role": "assistant", "content": "Say hi"}],  # role
        [{"role": "system", "content": "You are verbose."}, msgs[1]],  # system text
        [msgs[1], msgs[0]],  # order
        [*msgs, {"role": "user", "content": ""}],  # one more message
    ]
    keys = {key(messages=v) for v in variants} | {key()}
    assert len(keys) == len(variants) + 1


def test_key_ignores_dict_order_trailing_slash_and_int_floats() -> None:
    reordered_msgs = [{"content": m["content"], "role": m["role"]} for m in BASE["messages"]]
    reordered_schema = {"properties": {"a": {"type": "string"}}, "type": "object"}
    same = [
        key(messages=reordered_msgs, schema=reordered_schema),
        key(base_url=BASE["base_url"] + "/"),
        key(),
    ]
    assert len(set(same)) == 1
    assert key(temperature=1) == key(temperature=1.0)


def test_key_is_stable_hex_sha256_of_the_body_sent() -> None:
    k = key()
    assert re.fullmatch(r"[0-9a-f]{64}", k)
    # what rides along on a message is sent to the provider, so it is part of the key
    named = [{**m, "name": "x"} for m in BASE["messages"]]
    assert key(messages=named) != k
    # a golden value: changing the serialisation silently would orphan every shared CI cache
    assert k == "bf0f036537518a75890faaaa9c5de9cfb650b9bd521be3cc6138cdb783798552"


def test_unicode_is_hashed_as_utf8() -> None:
    assert key(messages=[{"role": "user", "content": "héllo ✓"}]) != key(
        messages=[{"role": "user", "content": "hello ✓"}]
    )
