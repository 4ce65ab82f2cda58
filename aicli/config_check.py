"""Config mistakes, worded and in reading order: every mistake gets its place in the file, the
first one is reported with its key path, and a misspelt key, tier or provider gets "did you mean".

Works on the file's data as written (a mapping from YAML), so a reference mistake early in the
file is reported before a schema mistake later on, and an implied value (`default_tier` left out)
is blamed only after everything the user wrote. pydantic's errors (when config_schema.py's own
check is unsure) are worded here too, never showing a value that may be a key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aicli.config_schema import hints, is_settings
from aicli.errors import ConfigError, close_matches
from aicli.scrub import without_credentials
from aicli.settings import ConfigFile

if TYPE_CHECKING:
    from pydantic import ValidationError

DEFAULTS_HINT = "`aicli config show --defaults` prints every key, with comments"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BUILTIN_TIERS_NOTE = "a file with `tiers:` replaces all the built-in tiers"
_KEY_PATH = re.compile(r"key|token|secret|passw", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Mistake:
    """One problem in a config file; mistakes sort in the order a reader meets them."""

    position: tuple[int, ...]  # where a reader meets it: key indexes, top to bottom
    path: str = ""
    what: str = ""
    hint: str = DEFAULTS_HINT


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an endpoint (None when it can): http(s), a host, a valid port."""
    from urllib.parse import urlsplit

    if not url.isprintable() or any(c.isspace() for c in url):
        return "a URL must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "a URL must look like http(s)://host[:port]/path"
    if port == 0:
        return "port 0 is not a port to connect to"
    return None


def position(data: Any, loc: tuple[Any, ...]) -> tuple[int, ...]:
    """Where the key at `loc` sits in the file; a key that is not written sits at the end of
    the mapping that would hold it (so it is blamed after everything written there)."""
    where: list[int] = []
    node = data
    for part in loc:
        if isinstance(node, Mapping):
            keys = list(node)
            if part not in node:
                where.append(len(keys))
                break
            where.append(keys.index(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            where.append(part)
            node = node[part]
        else:
            break
    return tuple(where)


def reference_mistakes(data: Mapping[str, Any], builtin_tiers: list[str]) -> list[Mistake]:
    """Unknown tiers and providers, and key variables that are not names, wherever written."""
    tiers = data.get("tiers")
    tiers = tiers if isinstance(tiers, Mapping) else {}
    providers = data.get("providers")
    providers = providers if isinstance(providers, Mapping) else {}
    names = [str(n) for n in tiers]
    found: list[Mistake] = []

    def unknown_tier(loc: tuple[Any, ...], path: str, target: str, what: str) -> None:
        listed = f" (tiers: {', '.join(sorted(names))})" if names else ""
        message = f"{what} '{target}'{listed}"
        hint = DEFAULTS_HINT
        near = close_matches(target, names, n=1)
        if near:
            message += f"; did you mean '{near[0]}'?"
        elif (builtin := close_matches(target, builtin_tiers, n=1)) and builtin[0] not in names:
            message += f"; did you mean '{builtin[0]}'?"
            hint = f"'{builtin[0]}' is a built-in tier, but {_BUILTIN_TIERS_NOTE}: define it here"
        found.append(Mistake(position(data, loc), path, message, hint))

    default = data.get("default_tier", "standard")
    if isinstance(default, str) and names and default not in tiers:
        if "default_tier" in data:
            unknown_tier(("default_tier",), "default_tier", default, "unknown tier")
        else:
            found.append(
                Mistake(
                    position(data, ("default_tier",)),
                    "default_tier",
                    f"not set, and the default '{default}' is not one of this file's tiers"
                    f" ({', '.join(sorted(names))})",
                    f"add `default_tier: {sorted(names)[0]}` ({_BUILTIN_TIERS_NOTE})",
                )
            )
    for name, tier in tiers.items():
        if not isinstance(tier, Mapping):
            continue
        provider = tier.get("provider", "openai")
        if isinstance(provider, str) and provider not in providers:
            known = sorted(str(p) for p in providers)
            near = close_matches(provider, known, n=1)
            guess = f"; did you mean '{near[0]}'?" if near else ""
            found.append(
                Mistake(
                    position(data, ("tiers", name, "provider")),
                    f"tiers.{name}.provider",
                    f"unknown provider '{provider}' (providers: {', '.join(known)}){guess}",
                    "define it under `providers:` or use one of those",
                )
            )
        fallback = tier.get("fallback")
        targets = [fallback] if isinstance(fallback, str) else fallback
        for target in targets if isinstance(targets, list) else []:
            if isinstance(target, str) and target not in tiers:
                loc = ("tiers", name, "fallback")
                unknown_tier(loc, f"tiers.{name}.fallback", target, "unknown tier")
    for name, provider in providers.items():
        if not isinstance(provider, Mapping):
            continue
        env = provider.get("api_key_env")
        loc = ("providers", name, "api_key_env")
        path = f"providers.{name}.api_key_env"
        if isinstance(env, str) and env and not _ENV_NAME.fullmatch(env):
            found.append(
                Mistake(
                    position(data, loc),
                    path,
                    "must be the NAME of an environment variable (like OPENAI_API_KEY), not the"
                    " key itself (the value is not shown)",
                )
            )
        kind = provider.get("type", "openai")
        url = provider.get("base_url")
        if kind != "echo" and (url is None or (isinstance(url, str) and not url.strip())):
            # no silent default endpoint: a `local: true` one would send prompts to OpenAI
            found.append(
                Mistake(
                    position(data, ("providers", name, "base_url")),
                    f"providers.{name}.base_url",
                    "required: the URL this provider's requests go to (like"
                    " https://api.openai.com/v1, or http://localhost:11434/v1 for a local Ollama);"
                    " without one they would go to OpenAI"
                    + (
                        ", unredacted, though it says `local: true`"
                        if provider.get("local")
                        else ""
                    ),
                )
            )
        elif isinstance(url, str) and (problem := url_problem(url)):
            where = position(data, ("providers", name, "base_url"))
            shown = without_credentials(url)  # never a credential written in the URL
            found.append(Mistake(where, f"providers.{name}.base_url", f"{problem}, got {shown!r}"))
        if kind == "openai" and not env and not provider.get("local"):
            found.append(
                Mistake(
                    position(data, loc),
                    path,
                    "required for an openai-type provider (the NAME of the env var holding the"
                    " key); set `local: true` for a keyless local server",
                )
            )
    serve = data.get("serve")
    tokens_env = serve.get("tokens_env") if isinstance(serve, Mapping) else None
    if isinstance(tokens_env, str) and not _ENV_NAME.fullmatch(tokens_env):
        found.append(
            Mistake(
                position(data, ("serve", "tokens_env")),
                "serve.tokens_env",
                "must be the NAME of an environment variable (like AICLI_SERVE_TOKENS), not a"
                " token (the value is not shown)",
            )
        )
    return found


def cycle_mistake(data: Mapping[str, Any], fallbacks: Mapping[str, list[str]]) -> Mistake | None:
    """The first fallback cycle (tiers in file order), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> Mistake | None:
        state[name] = 1
        for nxt in fallbacks.get(name, []):
            if state.get(nxt) == 1:
                cycle = " -> ".join([*path[path.index(nxt) :], nxt])
                loc = ("tiers", name, "fallback")
                return Mistake(
                    position(data, loc), f"tiers.{name}.fallback", f"fallback cycle {cycle}"
                )
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[name] = 2
        return None

    for name in sorted(fallbacks):
        if name not in state and (found := visit(name, [name])):
            return found
    return None


def first_error(mistakes: list[Mistake], label: str) -> ConfigError:
    """The mistake a reader of the file meets first, as the error to raise."""
    first = min(mistakes)
    more = f" (and {len(mistakes) - 1} more problem(s))" if len(mistakes) > 1 else ""
    return ConfigError(f"{label}: {first.path}: {first.what}{more}", first.hint)


def schema_mistakes(exc: ValidationError, data: Mapping[str, Any]) -> list[Mistake]:
    """pydantic's errors about the file `data`, worded for its reader and placed in it."""
    mistakes = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            what = (
                f"unknown key (expected one of: {', '.join(allowed)})" if allowed else "unknown key"
            )
            near = close_matches(str(loc[-1]), allowed, n=1)
            what += f"; did you mean '{near[0]}'?" if near else ""
        elif err["type"] == "literal_error":
            what = f"expected {err['ctx']['expected']}, got {_shown(err['input'], path)}"
        else:
            what = f"{err['msg']}, got {_shown(err['input'], path)}"
        mistakes.append(Mistake(position(data, loc), path, what))
    return mistakes


def _allowed_keys(parent: tuple[Any, ...]) -> list[str]:
    """The keys the settings class at `parent` (a pydantic error location) accepts."""
    kind: Any = ConfigFile
    for part in parent:
        if getattr(kind, "__origin__", None) is dict:  # tiers.<name>, providers.<name>
            kind = kind.__args__[-1]
            continue
        fields = hints(kind) if is_settings(kind) else {}
        if part not in fields:
            return []
        kind = fields[part]
    return sorted(hints(kind)) if is_settings(kind) else []


def _shown(value: Any, path: str) -> str:
    """A rejected value as the error shows it, never one that may be a key: not at a key-like
    path (a key pasted into `api_key_env` as a list or as digits), not one that looks like one."""
    if _KEY_PATH.search(path):
        return f"a {type(value).__name__} (not shown: it may be a key)"
    from aicli.redact import Redactor

    text = repr(value)
    if Redactor(["secret"]).redact(text) != text:
        return "a value that looks like a secret (not shown)"
    return text if len(text) <= 80 else f"{text[:77]}..."
