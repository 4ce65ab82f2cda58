"""`POST /generate`: the seed's request (plus aicli's fields) in, `generate --json`'s object out."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aicli.errors import TemplateError
from aicli.request_builder import PromptInput, build_request
from aicli.serve.admission import require_tier
from aicli.serve.answering import answer, answer_headers
from aicli.serve.state import ServeState, off_loop, state_of
from aicli.templates import Template, TemplateStore
from aicli.types import Request as AicliRequest

log = logging.getLogger("aicli.serve")

router = APIRouter()


class GenerateBody(BaseModel):
    """The seed's fields (prompt, max_tokens, temperature, session_id) and aicli's."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    prompt: str | None = Field(None, min_length=1, max_length=10000)
    max_tokens: int | None = Field(None, ge=1, le=4000)
    temperature: float | None = Field(None, ge=0, le=2)
    session_id: str | None = Field(None, max_length=256)  # accepted, never logged or keyed
    tier: str | None = Field(None, min_length=1, max_length=200)
    system: str | None = Field(None, max_length=100_000)
    template: str | None = Field(None, min_length=1, max_length=300)
    vars: dict[str, Any] = Field(default_factory=dict)
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    seed: int | None = None
    cache: Literal["use", "refresh", "off"] = "use"

    @model_validator(mode="after")
    def _prompt_or_template(self) -> GenerateBody:
        if self.prompt is None and self.template is None:
            raise ValueError("give `prompt`, or `template` with its `vars`")
        if self.vars and self.template is None:
            raise ValueError("`vars` needs `template`")
        return self


@router.post("/generate")
async def generate(body: GenerateBody, http: Request) -> JSONResponse:
    state = state_of(http)
    variables = dict(body.vars)
    if body.template is not None and body.prompt is not None:
        variables.setdefault("input", body.prompt)  # the prompt is the template's `input`
    given = PromptInput(
        prompt=None if body.template else body.prompt,
        template=body.template,
        variables=variables,
        system=body.system,
        tier=body.tier,
        temperature=body.temperature,
        seed=body.seed,
        schema=body.schema_,
    )
    # A template (files, Jinja) or a schema (jsonschema's own check) is work whose time the
    # caller chooses: off the event loop. A plain prompt is only joined.
    heavy = given.template is not None or given.schema is not None
    request = await off_loop(state, _render, state, given) if heavy else _render(state, given)
    tier = state.cfg.tier_for(request)
    # an unknown tier is 400 before anything else
    require_tier(state, tier, "tier" if body.tier else None)
    request.max_tokens = state.cfg.tier(tier).capped(body.max_tokens)
    request.cache_mode = body.cache
    request.request_id = http.state.request_id
    request.front = "http"  # errors name the body's fields, never CLI flags
    result = await answer(http, request, endpoint="generate")
    return JSONResponse(result.to_json(), headers=answer_headers(result))


def _render(state: ServeState, given: PromptInput) -> AicliRequest:
    """build_request over the app's one template store (in the offload pool: it may read the
    prompts folder and renders a template)."""
    store = state.templates.current() if state.templates and given.template else None
    return build_request(state.cfg, given, store=_ForCaller(store) if store else None)


class _ForCaller:
    """A store whose lookup errors name only what the caller sent: never the server's folder,
    files or other template names (the operator finds the detail in the log)."""

    def __init__(self, store: TemplateStore) -> None:
        self.store = store

    def get(self, ref: str) -> Template:
        try:
            return self.store.get(ref)
        except TemplateError as exc:
            log.warning(
                "template lookup failed: %s", exc.message, extra={"event": "serve.template"}
            )
            raise TemplateError(f"template '{ref}' is not available on this server") from None
