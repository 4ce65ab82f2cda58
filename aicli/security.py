"""Secrets and file safety: scrub API keys from text; owner-only files and directories."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aicli.errors import AicliError

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


# Escape sequences (CSI, OSC/DCS/APC strings, two-character escapes), then any other character
# a terminal would act on or that could fake a line: C0/C1 controls, format characters such as
# right-to-left overrides, line and paragraph separators.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|[\x1b\x9b-\x9f][\]PX^_].*?(?:\x07|\x1b\\|\x9c|$)"
    r"|\x1b[ -/]*[0-~]?",
    re.DOTALL,
)


def safe_line(text: object, limit: int | None = 300) -> str:
    """Text from a server, a suite or a report made fit for a terminal or a report line: no key
    or key tail, escape sequences dropped, other control and format characters (lone surrogates
    too) and every line break turned into spaces, runs of spaces folded, no CI workflow command
    (`::error::`), at most `limit` characters."""
    # escapes go first: a key split by one ("78\x1b[0m90abcd") is whole again for scrub()
    line = " ".join(scrub(_printable(_ESCAPES.sub("", str(text)))).split())
    if limit is not None and len(line) > limit:
        line = line[: limit - 3] + "..."
    return defuse_commands(line)


# GitHub Actions runs a log line's `::command ...::` (leading spaces trimmed; the legacy form
# `##[command]` too), wherever a table cell or a wrapped line puts it: one space defuses it.
_WORKFLOW = re.compile(
    r"::(?=(?:add-mask|add-matcher|add-path|debug|echo|endgroup|error|group|notice|"
    r"remove-matcher|save-state|set-env|set-output|stop-commands|warning)\b[^\n]*?::)"
    r"|##(?=\[)",
    re.IGNORECASE,
)


def defuse_commands(text: str) -> str:
    """`::error::x` -> `: :error::x` (and `##[` -> `# #[`): shown, never run by a CI runner."""
    if "::" not in text and "##[" not in text:
        return text
    return _WORKFLOW.sub(lambda m: m.group(0)[0] + " " + m.group(0)[1], text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """text with every lone surrogate (a "\\ud800" escape in JSON, an undecodable byte in an
    argument) replaced by U+FFFD: no UTF-8 can carry one, so every write of it would fail."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def answer_text(text: str) -> str:
    """A provider's answer as aicli keeps and shows it: lone surrogates -> U+FFFD, any known key
    -> `***`. Line breaks and everything else stay: it is the answer."""
    return hide_keys(valid_text(text))


def answer_field(value: object, limit: int = 200) -> str:
    """Any other text of a provider's answer that aicli passes on (model, ids, finish reason):
    one printable line without a key (empty when nothing printable is left)."""
    return safe_line(valid_text(str(value)), limit)


class StreamKeys:
    """answer_text() for a streamed answer: a key may arrive split across deltas, so an end that
    could be the start of a key waits for the next delta (or `rest()` at the end); any other
    text is shown at once."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, delta: str) -> str:
        """What may be shown now of everything fed so far."""
        text = answer_text(self._held + valid_text(delta))
        cut = len(text) - key_start_at_end(text)
        self._held = text[cut:]
        return text[:cut]

    def rest(self) -> str:
        held, self._held = self._held, ""
        return answer_text(held)


def safe_block(text: str) -> str:
    """safe_line for several lines (a --debug traceback): line breaks and indents are kept."""
    lines = _ESCAPES.sub("", text).splitlines()
    return "\n".join(defuse_commands(scrub(_printable(line))) for line in lines)


def _printable(text: str) -> str:
    import unicodedata

    return "".join(" " if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch for ch in text)


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside are owner-only (0600 files, 0700 directories)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def close_durably(f: IO[Any]) -> None:
    """Flush, fsync and close a file we wrote, so a report or recording survives a crash."""
    try:
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing: temp file in the same folder, fsync, rename; mode 0600."""
    import tempfile  # not at the top: a cache hit imports this module and never writes here

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class PrivateDir:
    """How errors about one owner-only directory read, and which AicliError they raise."""

    label: str  # "cache": "refusing to use the cache directory ..."
    setting: str  # where the user can choose another: "$AICLI_CACHE_DIR or cache.dir"
    contents: str  # what another user could read or plant there: "answers"
    error: type[AicliError] = AicliError


def prepare_private_dir(
    path: Path, rules: PrivateDir, ours: Callable[[set[str]], bool] | None = None
) -> None:
    """Create `path` (and parents) owner-only, or check that an existing one is safe to use.

    An existing directory that others can read is tightened to 0700 only when `ours` says its
    entry names are clearly ours (say, empty or already our layout): never a folder of the user's.
    """
    existed = path.is_dir()
    try:
        with private_umask():
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise rules.error(
            f"the {rules.label} path {path} exists but is not a directory",
            f"set {rules.setting} to a directory",
        ) from None
    except OSError as exc:
        raise rules.error(
            f"cannot create the {rules.label} directory {path}: {exc.strerror or exc}",
            f"set {rules.setting} to a directory you can write",
        ) from exc
    check_private_dir(path, rules)
    loose = existed and path.stat().st_mode & 0o077 and hasattr(os, "getuid")
    if loose and ours is not None and ours({p.name for p in path.iterdir()}):
        path.chmod(0o700)


def check_private_dir(path: Path, rules: PrivateDir) -> None:
    """Refuse a directory another user owns or anyone can write: they could read or plant files."""
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise rules.error(
            f"the {rules.label} path {path} is not a directory",
            f"set {rules.setting} to a directory",
        )
    if not hasattr(os, "getuid"):  # Windows: ACLs, not modes
        return
    if st.st_uid != os.getuid():
        raise rules.error(
            f"refusing to use the {rules.label} directory {path}: it is owned by another user"
            f" (uid {st.st_uid}), who could read or plant {rules.contents}",
            f"use a directory you own: set {rules.setting}",
        )
    if st.st_mode & stat.S_IWOTH:
        raise rules.error(
            f"refusing to use the {rules.label} directory {path}: every user can write to it",
            f"run 'chmod 700 {path}', or set {rules.setting} to another directory",
        )


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
