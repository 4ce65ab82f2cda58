"""Detection: the patterns and checks (Luhn, IBAN mod-97) that find personal data and secrets.

The patterns are our own, with detect-secrets' plugins as the reference for key formats:
detect-secrets takes ~110 ms to import, scans line by line, reports values rather than spans and
lacks Anthropic and current OpenAI keys; scrubadub pulls in scikit-learn, textblob, faker and
dateparser, and its phone detector (phonenumbers) needs a region to find national formats. This
module imports only `re` and `typing`, compiles its patterns once per process on first use, and is
tested against a corpus of true positives and near misses (tests/data/redaction_corpus.yaml).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterable

KINDS: tuple[str, ...] = ("email", "phone", "card", "iban", "secret")
MAX_DIGITS = 6  # placeholder numbers never get longer than this within one request

# Country -> IBAN length (SWIFT IBAN registry).
_IBAN_SPEC = (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27"
    " DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28"
    " IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24"
    " ME22 MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33"
    " SA24 SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"
)
_IBAN_LENGTHS = {entry[:2]: int(entry[2:]) for entry in _IBAN_SPEC.split()}

# Values that a `key = value` assignment holds in code or docs without being a secret.
_NOT_A_VALUE_SPEC = (
    "none null nil true false undefined str string int bytes bool optional required empty"
    " secret password passwd pass token redacted hidden"
)
_NOT_A_VALUE = frozenset(_NOT_A_VALUE_SPEC.split())
_PASSWORD_KEYS = ("pass", "pwd")  # a key containing these may hold short values


class Detection(NamedTuple):
    """One value found in a text: its kind and where it is."""

    kind: str
    start: int
    end: int
    value: str


class _Patterns:
    """Every compiled regex, built once per process by `compiled_patterns()`."""

    def __init__(self) -> None:
        c = re.compile
        self.pem_begin = c(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
        self.pem_end = c(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
        # The base64 lines of a key pasted without its END line.
        self.pem_body = c(
            r"(?:(?:[ \t]*\r?\n[ \t]*|[ \t]+)"
            r"(?:[A-Za-z0-9+/=]{16,}|(?:Proc-Type|DEK-Info):[^\n]*))+"
        )
        self.jwt = c(r"(?<![\w-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
        # (pattern, the group holding the part after the prefix or 0 when the regex says enough,
        # the literals one of which every match contains)
        self.tokens = [
            (c(r"(?<![\w-])sk-(?:ant-|proj-|svcacct-|admin-)?([A-Za-z0-9_-]{20,})"), 1, ("sk-",)),
            (c(r"(?<!\w)(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}(?!\w)"), 0, ("gh",)),
            (c(r"(?<!\w)github_pat_[A-Za-z0-9_]{22,255}"), 0, ("github_pat_",)),
            (
                c(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
                0,
                ("IA", "CCA"),
            ),
            (c(r"(?<![\w-])xox[abposr]-(?:\d+-)+[A-Za-z0-9-]{8,}"), 0, ("xox",)),
            (c(r"https://hooks\.slack\.com/services/T\w+/B\w+/\w+"), 0, ("hooks.slack.com",)),
            (c(r"(?<!\w)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), 0, ("sk_", "rk_")),
            (c(r"(?<!\w)whsec_[A-Za-z0-9]{24,}"), 0, ("whsec_",)),
            (c(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])"), 0, ("AIza",)),
        ]
        self.two_digits = c(r"\d\d")  # cards, IBANs and most phone numbers hold a run of digits
        self.alnum_run = c(r"[A-Za-z0-9]+")
        self.bearer = c(r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{16,}=*)")
        self.basic_auth = c(r"(?i)\bauthorization:\s*basic\s+([A-Za-z0-9+/]{8,}={0,2})")
        self.url_password = c(
            r"(?<![a-z0-9+.\-])[a-z][a-z0-9+.\-]{0,15}://[^\s:/@]{1,64}:([^\s:/@\[\]]{1,128})@[\w.\-]"
        )
        # Anchored on the key word itself (`DB_PASSWORD`, `client_secret`, `x-api-key` end in one)
        # so that long hyphenated runs cost linear time.
        self.assignment = c(
            r"(?i)(?<![A-Za-z0-9])(?P<key>password|passwd|passphrase|pwd|secret|secret[_\-]?key"
            r"|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|token)"
            r"[\"']?(?P<op>[ \t]*(?::=|=>|[=:])[ \t]*|[ \t]+(?=\S))"
            r"(?:\"(?P<dq>[^\"\n]{1,500})\"|'(?P<sq>[^'\n]{1,500})'"
            r"|(?P<bare>(?:[^\s\"'`,;&<>(){}\[\]]|&(?![\w.\-]+=)){1,500}))"
        )
        self.email = c(
            r"(?<![\w.+%\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-]|:\w)"
        )
        self.email_file = c(r"(?i)\.(?:png|jpe?g|gif|svg|webp|ico|css|js|ts|py|md|txt)$")
        self.card = c(  # not the digits inside an (invalid) IBAN
            r"(?<![\w.\-#/+])(?<![A-Z]{2}\d\d )"
            r"(?:\d{13,19}|\d{4}(?P<s>[ \-])\d{4,6}(?:(?P=s)\d{2,5}){1,3})"
            r"(?![\w]|[.,\-]\d)"
        )
        self.iban = c(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}")
        self.phone_intl = c(
            r"(?<![\w+])(?:\+|(?<!\d)(?<!\d[ .\-/])00(?=[1-9]))[1-9][\d().\- ]{5,24}"
        )
        self.phone_nanp = c(
            r"(?<![\w.+\-#/])(?<!\d[ .\-/])(?:1[ .\-])?"
            r"(?:\([2-9]\d{2}\)[ .\-]?[2-9]\d{2}[ .\-]\d{4}"
            r"|[2-9]\d{2}(?P<s>[ .\-])[2-9]\d{2}(?P=s)\d{4})(?![\w]|[.\-/]\d)"
        )
        # Trunk-prefix national numbers; not inside a longer run of digit groups (hex dumps).
        self.phone_national = c(
            r"(?<![\w.+\-#/])(?<!\d[ .\-/])0[1-9]\d{0,3}(?:[ .\-/]\d{2,8}){1,4}(?![\w]|[ .\-/:]\d)"
        )
        self.placeholder = c(rf"\[(EMAIL|PHONE|CARD|IBAN|SECRET)_([0-9]{{1,{MAX_DIGITS}}})\]")


_compiled: _Patterns | None = None


def compiled_patterns() -> _Patterns:
    """The compiled patterns, built on first use so that importing aicli.redact stays cheap."""
    global _compiled
    if _compiled is None:
        _compiled = _Patterns()
    return _compiled


def _luhn_ok(digits: str) -> bool:
    doubled = (
        n if i % 2 == 0 else n * 2 - 9 * (n > 4) for i, n in enumerate(map(int, digits[::-1]))
    )
    return sum(doubled) % 10 == 0


def _iban_ok(compact: str) -> bool:
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _key_body_ok(p: _Patterns, body: str) -> bool:
    """Whether what follows `sk-` is a key (hex, single-case or mixed) rather than hyphenated words.

    The prefix is the evidence, so any case or alphabet will do; `sk-learn-transformers-2024`
    and `sk-learn-compatible-estimators` are prose because no run between `-`/`_` is key-like.
    """
    for run in p.alnum_run.findall(body):
        if len(run) >= 24 or (
            len(run) >= 12 and any(map(str.isdigit, run)) and any(map(str.isalpha, run))
        ):
            return True
    return False


# Every pattern below runs only on a text holding a literal that all its matches contain: a regex
# that opens with a lookbehind is tried at every position (~30 us per 2 KB each, and a prompt is
# redacted on every request). (?i) patterns check the lowercased text, except in a text holding
# one of the four non-ASCII letters that (?i) matches to ASCII ones: there every one runs.
_FOLDS_TO_ASCII = ("\u0130", "\u0131", "\u017f", "\u212a")  # dotted I, dotless i, long s, Kelvin
_ASSIGNMENT_WORDS = ("pass", "pwd", "secret", "key", "token")  # in each key the pattern knows


def _may_hold(folded: str | None, words: tuple[str, ...]) -> bool:
    return folded is None or any(w in folded for w in words)


def _find_secrets(p: _Patterns, text: str) -> list[tuple[int, int]]:
    folded = None if any(c in text for c in _FOLDS_TO_ASCII) else text.lower()
    spans = _find_pem_blocks(p, text)
    if "eyJ" in text:
        spans += [m.span() for m in p.jwt.finditer(text)]
    for pattern, body_group, literals in p.tokens:
        if not any(lit in text for lit in literals):
            continue
        for m in pattern.finditer(text):
            if not body_group or _key_body_ok(p, m.group(body_group)):
                spans.append(m.span())
    # After `Bearer`, a digit is enough to tell a token from words (`Bearer token required`).
    if _may_hold(folded, ("bearer",)):
        spans += [m.span(1) for m in p.bearer.finditer(text) if any(map(str.isdigit, m.group(1)))]
    if _may_hold(folded, ("authorization",)):
        spans += [m.span(1) for m in p.basic_auth.finditer(text)]
    if "://" in text:
        spans += [m.span(1) for m in p.url_password.finditer(text) if _url_password_ok(m.group(1))]
    if _may_hold(folded, _ASSIGNMENT_WORDS):
        for m in p.assignment.finditer(text):
            span = _assignment_value(m, text)
            if span is not None:
                spans.append(span)
    return spans


def _url_password_ok(value: str) -> bool:
    """Not a documentation stand-in like `user:pass@host` or `<user>:<password>@host`."""
    return len(value) >= 4 and value.lower() not in _NOT_A_VALUE and value[0] not in "<{$%"


def _find_pem_blocks(p: _Patterns, text: str) -> list[tuple[int, int]]:
    """BEGIN through the next END, found in one pass each so that many BEGINs stay linear."""
    ends = [m.span() for m in p.pem_end.finditer(text)]
    spans: list[tuple[int, int]] = []
    j = 0
    for m in p.pem_begin.finditer(text):
        if spans and m.start() < spans[-1][1]:
            continue
        while j < len(ends) and ends[j][0] < m.end():
            j += 1
        if j < len(ends):
            spans.append((m.start(), ends[j][1]))
        else:
            body = p.pem_body.match(text, m.end())
            spans.append((m.start(), body.end() if body else m.end()))
    return spans


def _assignment_value(m: re.Match[str], text: str) -> tuple[int, int] | None:
    """The span of a `password=...` value worth hiding, or None for types, variables, prose."""
    key, op = m.group("key").lower(), m.group("op").strip()
    if not op:
        start = m.start()
        while start > max(0, m.start() - 64) and (
            text[start - 1].isalnum() or text[start - 1] in "_.-"
        ):
            start -= 1
        value = m.group("bare") or ""
        if text[start : start + 1] != "-" or value.startswith("-") or value.isalpha():
            return None  # `--password hunter2` only, not prose nor `--token --next-flag`
    group = next(g for g in ("dq", "sq", "bare") if m.group(g) is not None)
    value = m.group(group)
    low = value.lower()
    if len(value) < 4 or low in _NOT_A_VALUE or low == key or set(value) <= set("*xX•.-_ "):
        return None
    if value.count("*") * 2 >= len(value):
        return None  # masked already: `:****`
    if value[0] in "$%<{[/~" or "{{" in value or "${" in value:
        return None  # a template, an env reference, a placeholder, a path (`PWD=/home/me`)
    if not any(k in key for k in _PASSWORD_KEYS) and (len(value) < 8 or value.isdigit()):
        return None  # `token: 42`, `api_key: str`; keys and tokens are long
    if group == "bare" and _is_code_or_prose(value, key, m.group("op"), text[m.end() :][:2]):
        return None
    return m.span(group)


def _is_code_or_prose(value: str, key: str, op: str, after: str) -> bool:
    """Whether an unquoted value reads as a variable, a type or words rather than a literal.

    Literal secrets in code are quoted, so a bare identifier after ` = `, `=>` or a keyword
    argument's `=` is a variable; after `:` a capitalised one is a type. Config files
    (`.env`, DSNs, YAML, URLs) hold bare literals, which these rules leave alone.
    """
    if after[:1] in ("(", "[") or re.fullmatch(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", value):
        return True  # hide_value(...), parts['password'], settings.API_KEY
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) or re.fullmatch(
        r"[0-9a-fA-F]{20,}", value
    ):
        return False  # not a name; or a long hex string (`token = deadbeef...`), never a name
    if key in value.lower():
        return True  # password=db_password
    if any(c.isdigit() for c in value):
        return False
    stripped = op.strip()
    if stripped in ("=>", ":=") or (stripped == "=" and op != "=") or after[:1] in (",", ")"):
        return True  # `token = nextchar`, `api_key=credential,`
    if stripped == ":" and not value[0].islower():
        return True  # `password: SecretStr`, `api_key: _KeyT | None`
    if stripped == ":" and value.isalpha():
        return bool(after) and not re.match(r"[.,;!?)]?(?:\s*$|\r?\n)|[,;)]", after)
    return False


def _find_phones(p: _Patterns, text: str) -> list[tuple[int, int]]:
    run = p.two_digits.search(text)  # NANP and national numbers open with two digits in a row
    spans = [m.span() for m in p.phone_nanp.finditer(text)] if run else []
    for m in p.phone_national.finditer(text) if run else ():
        value = m.group()
        seps = re.findall(r"[ .\-/]", value)
        rest = seps[1:] if seps[0] == "/" else seps
        if re.fullmatch(r"\d{5}-\d{4}", value):
            continue  # a US ZIP+4 code
        if 9 <= sum(c.isdigit() for c in value) <= 12 and len(set(rest)) <= 1 and "/" not in rest:
            spans.append(m.span())
    intl = "+" in text or "00" in text  # an international number opens with one of them
    for m in p.phone_intl.finditer(text) if intl else ():
        value = m.group()
        double = re.search(r"[ .\-]{2}", value)
        if double:
            value = value[: double.start()]
        if value.count("(") > value.count(")"):
            value = value[: value.rfind("(")]
        if value.count(")") > value.count("("):
            value = value[: value.rfind(")")]
        value = value.rstrip(" .-")
        if "(" in re.sub(r"\(\d{1,4}\)", "", value) or ")" in re.sub(r"\(\d{1,4}\)", "", value):
            continue
        end = m.start() + len(value)
        if end < len(text) and (text[end].isalnum() or text[end] == "_"):
            continue
        if value.startswith("00") and value.isdigit():
            continue  # unseparated 00-numbers are more often ids and short hashes
        digits = sum(c.isdigit() for c in value) - (2 if value.startswith("00") else 0)
        if 8 <= digits <= 15 and value.count(".") != 1:
            spans.append((m.start(), end))
    return spans


def _find_cards(p: _Patterns, text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if not p.two_digits.search(text):
        return spans
    for m in p.card.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn_ok(digits):
            spans.append(m.span())
    return spans


def _find_ibans(p: _Patterns, text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if not p.two_digits.search(text):  # the check digits
        return spans
    for m in p.iban.finditer(text):
        want = _IBAN_LENGTHS.get(m.group()[:2])
        if want is None:
            continue
        # Cut the candidate at the country's length; it must end there, at a group boundary.
        cut = re.match(rf"\w{{4}}(?: ?\w){{{want - 4}}}", m.group())
        end = m.start() + cut.end() if cut else 0
        at_boundary = end >= len(text) or not text[end].isalnum()
        if cut and at_boundary and _iban_ok(cut.group().replace(" ", "")):
            spans.append((m.start(), end))
    return spans


def _find_emails(p: _Patterns, text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if "@" not in text:
        return spans
    for m in p.email.finditer(text):
        if p.email_file.search(m.group()) or re.search(
            r"://[^\s/@:]*:$", text[max(0, m.start() - 300) : m.start()]
        ):
            continue  # icon@2x.png; the password of user:password@host is a secret
        spans.append(m.span())
    return spans


# Tie-break order for matches with the same start and length: the most specific kind first.
_FINDERS = (
    ("secret", _find_secrets),
    ("iban", _find_ibans),
    ("card", _find_cards),
    ("email", _find_emails),
    ("phone", _find_phones),
)
_RANK = {kind: rank for rank, (kind, _) in enumerate(_FINDERS)}


def detect(text: str, kinds: Iterable[str] | None = None) -> list[Detection]:
    """Every value of the given kinds in `text`, non-overlapping, earliest then longest first."""
    selected = check_kinds(kinds)
    p = compiled_patterns()
    found = [
        Detection(kind, start, end, text[start:end])
        for kind, finder in _FINDERS
        if kind in selected
        for start, end in finder(p, text)
        if end > start
    ]
    return earliest_longest(found)


def earliest_longest(found: list[Detection]) -> list[Detection]:
    """Drop overlaps: the earliest start wins, then the longest, then the most specific kind."""
    found.sort(key=lambda d: (d.start, -d.end, _RANK[d.kind]))
    result: list[Detection] = []
    for d in found:
        if not result or d.start >= result[-1].end:
            result.append(d)
    return result


def check_kinds(kinds: Iterable[str] | None) -> frozenset[str]:
    """The chosen kinds (all for None, one for a string); an unknown kind is a ValueError."""
    if kinds is None:
        return frozenset(KINDS)
    chosen = frozenset([kinds] if isinstance(kinds, str) else kinds)
    unknown = sorted(chosen - set(KINDS))
    if unknown:
        raise ValueError(
            f"unknown redaction kind {', '.join(map(repr, unknown))}; "
            f"valid kinds: {', '.join(KINDS)}"
        )
    return chosen
