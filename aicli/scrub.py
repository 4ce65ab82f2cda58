"""Secrets kept out of text: API keys (exact values, masked tails, long runs of a key) and the
credentials a URL carries, scrubbed from every message, log line and report aicli writes."""

from __future__ import annotations

import os
import re
from typing import Any

_secrets: set[str] = set()
_SECRET_ENV = re.compile(r"(API_?KEY|TOKEN|SECRET)", re.IGNORECASE)


def register_secret(value: str) -> None:
    """Remember a key value so that scrub() removes it from every message aicli prints."""
    if len(value) >= 8:
        _secrets.add(value)


def hide_keys(text: str) -> str:
    """Every known key value (and the env's key-like variables) replaced by `***`: exact matches
    only, so an answer's own words are never touched."""
    _read_env()
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def key_start_at_end(text: str) -> int:
    """The length of the longest end of text that some known key begins with (0 when none):
    what a stream must hold back until the next chunk says whether a key follows."""
    _read_env()
    longest = 0
    for secret in _secrets:
        for n in range(min(len(secret) - 1, len(text)), longest, -1):
            if text.endswith(secret[:n]):
                longest = n
                break
    return longest


def scrub(text: str) -> str:
    """Replace every known key value (and the env's key-like variables) with `***`, and any word
    that shows a key's tail (`sk-...7890abcd`, `****90abcd`, `'7890ABCD'`) or 12+ of its
    characters in a row: servers echo keys masked in many ways."""
    text = hide_keys(text)
    # Word by word is slow (every log line of a server passes here): look word by word only
    # when the whole text holds some key's tail or 12-character run.
    if _secrets and _clue().search(text.lower().replace("ς", "σ")):
        text = _WORD.sub(lambda m: "***" if _shows_a_key(m.group(0)) else m.group(0), text)
    return text


_env_seen: dict[Any, Any] = {}


def _read_env() -> None:
    """Add the env's key-like variables to the secrets; a rescan only when the env changed
    (decoding every variable on each call cost more than the rest of a log line)."""
    global _env_seen
    raw = getattr(os.environ, "_data", None)  # CPython's own dict behind os.environ
    if raw is not None and raw == _env_seen:  # unchanged values are the same objects: fast
        return
    for name, value in os.environ.items():
        if _SECRET_ENV.search(name) and len(value) >= 8:
            _secrets.add(value)
    _env_seen = dict(raw) if raw is not None else {}


_clues: tuple[int, re.Pattern[str]] = (0, re.compile("(?!)"))


def _clue() -> re.Pattern[str]:
    """Any piece of a known key that `_shows_a_key` looks for. A word's match is the text's
    too (final sigma, the one context-dependent lowercase, is folded on both sides)."""
    global _clues
    if _clues[0] != len(_secrets):  # _secrets only grows: its size says when to rebuild
        pieces = set()
        for secret in _secrets:
            low = secret.lower().replace("ς", "σ")
            pieces.add(low[-_TAIL:])
            pieces.update(low[i : i + 12] for i in range(len(low) - 11))
        _clues = (len(_secrets), re.compile("|".join(map(re.escape, sorted(pieces)))))
    return _clues[1]


_WORD = re.compile(r"[^\s'\"`<>()\[\]{},;:=]{4,}")  # a key and whatever masks it, as one word
_TAIL = 4  # "***abcd": the fewest characters of a key's end servers show


def _shows_a_key(word: str) -> bool:
    low_word = word.lower()
    for secret in _secrets:
        low = secret.lower()
        # the tail where a key ends: not followed by more of a word ("abcdef" is no match)
        tail_at_end = re.search(re.escape(low[-_TAIL:]) + "(?![a-z0-9])", low_word)
        if tail_at_end or _shares_a_run(low_word, low, 12):
            return True
    return False


def _shares_a_run(word: str, secret: str, n: int) -> bool:
    """Whether word holds n characters of secret in a row."""
    if len(word) < n:
        return False
    return any(secret[i : i + n] in word for i in range(len(secret) - n + 1))


# Query parameters that carry a credential (redis-py reads `password` and `username`).
_SECRET_PARAMS = {"password", "username", "user", "pass", "passwd", "token", "secret", "key"}


def without_credentials(url: str, *, keep_user: bool = False) -> str:
    """A URL as messages may show it: every credential it can carry masked. `user:password@`
    becomes `***@` (keep_user: `user:***@`, and `user@` stays), and `?password=...`,
    `username=...` (and the like) become `=***`."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparsable URL, not shown)"
    shown = url  # edited in place: urlunsplit would turn `unix:///path` into `unix:/path`
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        user, colon, _password = userinfo.partition(":")
        masked = "***" if not keep_user else f"{user}:***" if colon else user
        shown = shown.replace(f"//{parts.netloc}", f"//{masked}@{host}", 1)
    if parts.query:
        fields = []
        for field in parts.query.split("&"):
            name, sep, _value = field.partition("=")
            secret = sep and _unquoted(name).strip().lower() in _SECRET_PARAMS
            fields.append(f"{name}=***" if secret else field)
        shown = shown.replace(f"?{parts.query}", "?" + "&".join(fields), 1)
    return shown


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries (its password, `password=` and the like), for scrub()."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
    except ValueError:
        return []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name.strip().lower() in _SECRET_PARAMS - {"username", "user"}:
            found.append(value)
    found += [_unquoted(value) for value in found]  # redis-py decodes %xx before it sends them
    return sorted({value for value in found if value}, key=len, reverse=True)


def _unquoted(text: str) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(text)
