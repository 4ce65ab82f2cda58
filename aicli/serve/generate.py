"""`POST /generate`: the seed's request (plus aicli's fields) in, `generate --json`'s object out."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aicli.request_builder import PromptInput, build_request
from aicli.serve.answering import answer, answer_headers, cap_max_tokens
from aicli.serve.deps import state_of

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
    request = build_request(state.cfg, given)
    tier = request.tier or state.cfg.default_tier
    state.cfg.tier(tier)  # an unknown tier is 400 before anything else
    request.max_tokens = cap_max_tokens(state, tier, body.max_tokens)
    request.cache_mode = body.cache
    request.request_id = http.state.request_id
    request.front = "http"  # errors name the body's fields, never CLI flags
    result = await answer(http, request, endpoint="generate")
    return JSONResponse(result.to_json(), headers=answer_headers(result))
