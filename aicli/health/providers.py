"""Provider health checks: the key variable is set, `GET {base_url}/models` answers and accepts
the key, and each tier's model is listed (a warning naming the closest listed models if not).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from aicli.errors import close_matches
from aicli.health.model import Check
from aicli.scrub import register_secret, scrub, without_credentials

if TYPE_CHECKING:
    from aicli.config import Config

_MAX_BODY = 4 * 1024 * 1024  # a /models answer bigger than this is not a model list


def _check(name: str, status: Any, detail: str, hint: str | None = None) -> Check:
    return Check(name, status, scrub(detail), scrub(hint) if hint else None, "provider")


async def provider_checks(
    cfg: Config, name: str, tiers: list[str], *, offline: bool, timeout_s: float
) -> list[Check]:
    """The checks of one provider and of the models of the tiers that use it."""
    provider = cfg.provider(name)
    prefix = f"provider.{name}"
    if provider.type == "echo":
        return [_check(prefix, "ok", "built-in echo provider: no key, no network")]
    url = cfg.base_url(name)
    shown = without_credentials(url)
    env = provider.api_key_env
    key = os.environ.get(env, "").strip() if env else ""
    checks: list[Check] = []
    if key and env:
        register_secret(key)
        checks.append(_check(f"{prefix}.key", "ok", f"${env} is set"))
    elif env and not provider.local:
        hint = f"export {env}=... (or use another tier, e.g. -t echo offline)"
        checks.append(_check(f"{prefix}.key", "fail", f"${env} is not set", hint))
    else:
        checks.append(_check(f"{prefix}.key", "ok", "no key needed (a local server)"))
    model_checks = [f"tier.{t}.model" for t in tiers]

    def skip_rest(why: str, *, auth: bool = True) -> list[Check]:
        rest = [_check(f"{prefix}.auth", "skip", why)] if auth else []
        return rest + [_check(n, "skip", why) for n in model_checks]

    if offline:
        checks.append(_check(f"{prefix}.endpoint", "skip", f"{shown}: not contacted (--offline)"))
        return checks + skip_rest("not checked (--offline)")
    status, body, problem = await _get_models(url, key, timeout_s)
    if problem is not None:
        hint = f"is the server at {shown} running? check providers.{name}.base_url"
        if name == "openai" and os.environ.get("OPENAI_BASE_URL"):
            hint = f"is the server at {shown} running? ($OPENAI_BASE_URL sets it)"
        checks.append(_check(f"{prefix}.endpoint", "fail", f"{shown} {problem}", hint))
        return checks + skip_rest("not checked: the endpoint does not answer")
    checks.append(_check(f"{prefix}.endpoint", "ok", f"{shown} answers (HTTP {status})"))
    if status in (401, 403):
        if key:
            detail = f"{shown} refused the key in ${env} (HTTP {status})"
            hint = f"${env} holds the key aicli sends; make sure it is valid for {shown}"
            checks.append(_check(f"{prefix}.auth", "fail", detail, hint))
        else:
            checks.append(_check(f"{prefix}.auth", "skip", "no key to try"))
        return checks + skip_rest("not checked: the model list needs a key", auth=False)
    models = _model_ids(body) if status == 200 else None
    if status != 200 or models is None:
        why = f"{shown} does not list its models (GET /models: HTTP {status})"
        return checks + skip_rest(f"cannot tell: {why}")
    accepted = f"accepts the key in ${env}" if key else "answers without a key"
    checks.append(_check(f"{prefix}.auth", "ok", f"{shown} {accepted}"))
    for tier in tiers:
        model = cfg.tiers[tier].model
        if model in models:
            checks.append(_check(f"tier.{tier}.model", "ok", f"{model} is listed by {name}"))
            continue
        near = close_matches(model, models)
        listed = f"; closest listed: {', '.join(near)}" if near else ""
        detail = f"{model} is not in the {len(models)} models {name} lists{listed}"
        hint = f"check tiers.{tier}.model (some servers serve models they do not list)"
        checks.append(_check(f"tier.{tier}.model", "warn", detail, hint))
    return checks


async def _get_models(url: str, key: str, timeout_s: float) -> tuple[int, bytes, str | None]:
    """(status, body, None) when the server answered, else (0, b"", what went wrong); the whole
    exchange ends by timeout_s (httpx's own timeout bounds each read, not a dripping body)."""
    import asyncio

    try:
        return await asyncio.wait_for(_fetch_models(url, key, timeout_s), timeout_s)
    except asyncio.TimeoutError:
        return 0, b"", f"did not answer within {timeout_s:g} s"


async def _fetch_models(url: str, key: str, timeout_s: float) -> tuple[int, bytes, str | None]:
    import httpx2

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        async with (
            httpx2.AsyncClient(timeout=timeout_s, follow_redirects=False) as client,
            client.stream("GET", url.rstrip("/") + "/models", headers=headers) as response,
        ):
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_BODY:
                    break
            return response.status_code, body, None
    except httpx2.TimeoutException:
        return 0, b"", f"did not answer within {timeout_s:g} s"
    except (httpx2.HTTPError, OSError, ValueError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        return 0, b"", f"cannot be reached ({reason[:160]})"


def _model_ids(body: bytes) -> list[str] | None:
    """The ids in an OpenAI-style `{"data": [{"id": ...}]}` list, or None for anything else."""
    if len(body) > _MAX_BODY:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    ids = [m.get("id") for m in items if isinstance(m, dict)]
    # printable only: the ids end up on the terminal
    return [i for i in ids if isinstance(i, str) and i.isprintable() and len(i) <= 200]
