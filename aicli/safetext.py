"""Text from outside (servers, suites, reports, arguments) made safe where it is shown: one
printable line for a terminal, a log or a report (safe_line), control characters made visible
(visible), a provider's answer without a key or a lone surrogate (answer_text, StreamKeys)."""

from __future__ import annotations

import re

from aicli.scrub import hide_keys, key_start_at_end, scrub

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


# What `visible` shows as \xNN: controls, bidi overrides (they reorder what is shown), line
# breaks. Kept apart from _printable: there the character goes, here the reader sees it was sent.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """Text safe for a terminal or a page with its lines kept (an answer in an HTML report):
    control characters (escape sequences too) shown as \\xNN, not dropped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


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
