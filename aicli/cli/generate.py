"""`aicli generate`: one prompt in, one answer out (plain, streamed or --json)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aicli.cli import options
from aicli.cli.completion import template_names, tier_names
from aicli.cli.output import (
    check_text,
    handle_errors,
    info,
    is_tty,
    out,
    print_json,
    read_piped_stdin,
)
from aicli.cli.startup import long_lived
from aicli.types import text_sink

if TYPE_CHECKING:
    from aicli.config import Config
    from aicli.types import Request, Result


def _seed_in_range(value: int | None) -> int | None:
    if value is not None and not -(2**63) <= value < 2**63:
        raise typer.BadParameter("a seed is a 64-bit integer, from -2^63 to 2^63-1")
    return value


# generate's own options (the shared ones are in cli/options.py)
_PromptArg = Annotated[
    str | None,
    typer.Argument(
        metavar="PROMPT",
        help="The prompt. Piped stdin comes first, then a blank line, then this.",
        show_default=False,
    ),
]
_TierOpt = Annotated[
    str | None,
    typer.Option(
        "--tier",
        "-t",
        metavar="NAME",
        help="Model tier (default: default_tier; `aicli tiers` lists them).",
        autocompletion=tier_names,
    ),
]
_ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", metavar="MODEL", help="Override the tier's model (same provider)."
    ),
]
_SystemOpt = Annotated[
    str | None, typer.Option("--system", "-s", metavar="TEXT", help="System prompt.")
]
_TemplateOpt = Annotated[
    str | None,
    typer.Option(
        "--template",
        "-T",
        metavar="NAME[@VERSION]",
        help="Render prompt template NAME[@VERSION] instead of PROMPT.",
        autocompletion=template_names,
    ),
]
_VarOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--var",
        metavar="KEY=VALUE",
        help="Template variable KEY=VALUE (repeatable; JSON values are parsed).",
    ),
]
_VarsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--vars-file",
        metavar="FILE",
        help="YAML or JSON file of template variables (--var wins).",
    ),
]
_MaxTokensOpt = Annotated[
    int | None,
    typer.Option("--max-tokens", metavar="N", min=1, max=10_000_000, help="Answer token cap."),
]
_TemperatureOpt = Annotated[
    float | None,
    typer.Option("--temperature", metavar="T", min=0.0, max=2.0, help="Sampling temperature."),
]
_SeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        metavar="N",
        # checked by the callback, not min/max: click would print the 20-digit range in the
        # help, where it wraps inside a number
        callback=_seed_in_range,
        help="Sampling seed, where supported: a 64-bit integer.",
    ),
]
_SchemaOpt = Annotated[
    Path | None,
    typer.Option(
        "--schema",
        metavar="FILE",
        help="JSON Schema file: the answer must be JSON valid against it.",
    ),
]
_JsonOutOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object with metadata.")]
_StreamOpt = Annotated[
    bool | None,
    typer.Option(
        "--stream/--no-stream",
        help="Stream the answer (default: when stdout is a TTY).",
        show_default=False,
    ),
]
_MaxCostOpt = Annotated[
    float | None,
    typer.Option(
        "--max-cost",
        metavar="USD",
        min=0.0,
        max=1e9,
        help="Budget in USD for this call (exit 4 if it could exceed).",
    ),
]
_NoRedactOpt = Annotated[bool, typer.Option("--no-redact", help="Send the prompt unredacted.")]
_VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="One summary line on stderr: model, tokens, cost, cache."),
]


def generate(
    prompt: _PromptArg = None,
    tier: _TierOpt = None,
    model: _ModelOpt = None,
    system: _SystemOpt = None,
    template: _TemplateOpt = None,
    var: _VarOpt = None,
    vars_file: _VarsFileOpt = None,
    max_tokens: _MaxTokensOpt = None,
    temperature: _TemperatureOpt = None,
    seed: _SeedOpt = None,
    schema: _SchemaOpt = None,
    json_out: _JsonOutOpt = False,
    stream: _StreamOpt = None,
    no_cache: options.NoCacheOpt = False,
    refresh: options.RefreshOpt = False,
    cache_only: options.CacheOnlyOpt = False,
    max_cost: _MaxCostOpt = None,
    no_redact: _NoRedactOpt = False,
    verbose: _VerboseOpt = False,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Generate an answer for PROMPT (and/or piped stdin) with a model tier.

    \b
    Examples:
      aicli generate "Name three prime numbers"
      cat notes.txt | aicli generate "Summarize in 3 bullets"
      git diff --staged | aicli generate -T commit-message
      aicli generate --json -t premium "Hello" | jq .cost_usd
    """
    with handle_errors(debug, verbose=verbose, log_format=log_format):
        with long_lived():  # start-up time: see aicli/cli/startup.py
            from aicli import cache  # noqa: F401  (loaded here: the engine opens it)
            from aicli.config import load_config
            from aicli.cost import Budget
            from aicli.engine import Engine
            from aicli.errors import AicliError, UsageError

        cache_mode = options.cache_mode(no_cache, refresh, cache_only)
        check_text(prompt, "PROMPT")
        check_text(system, "--system")
        var = var or []
        for item in var:
            check_text(item, "--var")
        cfg = load_config(config)
        stdin_text = read_piped_stdin()
        request = _build_request(
            cfg,
            prompt=prompt,
            stdin_text=stdin_text,
            template=template,
            var=var,
            vars_file=vars_file,
            schema_path=schema,
            system=system,
            tier=tier,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
        )
        request.cache_mode = cache_mode
        request.redact = False if no_redact else None
        budget = Budget(max_cost if max_cost is not None else cfg.budget.max_cost_usd)
        engine = Engine(cfg, budget=budget)
        streaming = stream if stream is not None else (is_tty() and not json_out)
        if streaming and json_out:
            raise UsageError("--stream and --json exclude each other", "drop one of them")

        printed = False

        def emit(text: str) -> None:
            nonlocal printed
            if text:
                printed = True
                sys.stdout.write(text)
                sys.stdout.flush()

        try:
            result = engine.run_sync(request, text_sink(emit) if streaming else None)
        except AicliError:
            if printed:
                out("")  # end the partial line so the error starts on its own
            raise
        if json_out:
            print_json(result.to_json())
        elif streaming:
            out("")
        else:
            out(result.content)
        if verbose:
            info(_summary(result), "summary", **_summary_fields(result))
        budget.check_overrun()  # the answer is paid for and printed; the cap still says exit 4


def _build_request(
    cfg: Config,
    *,
    prompt: str | None,
    stdin_text: str | None,
    template: str | None,
    var: list[str],
    vars_file: Path | None,
    schema_path: Path | None,
    **settings: Any,
) -> Request:
    """Flags -> PromptInput -> Request; the building itself is shared with `aicli serve`."""
    from aicli.errors import UsageError
    from aicli.request_builder import PromptInput, build_request

    variables: dict[str, Any] = {}
    if template:
        if prompt is not None:
            raise UsageError(
                "give either PROMPT or --template, not both",
                "pass text to a template with --var KEY=VALUE or piped stdin (variable `input`)",
            )
        from aicli.templates import collect_variables

        variables = collect_variables(var, vars_file, stdin_text)
    elif var or vars_file:
        raise UsageError("--var and --vars-file need --template", "add -T NAME[@VERSION]")
    given = PromptInput(
        prompt=prompt,
        stdin_text=None if template else stdin_text,
        template=template,
        variables=variables,
        schema=_load_schema(schema_path) if schema_path else None,
        schema_label=f"--schema {schema_path}",
        **settings,
    )
    return build_request(cfg, given)


def _load_schema(path: Path) -> Any:
    import json

    from aicli import yamlsafe
    from aicli.errors import UsageError

    try:
        text = yamlsafe.read_text(path)
    except OSError as exc:
        raise UsageError(f"--schema {path}: cannot read it: {exc.strerror}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yamlsafe.load(text)
    except yamlsafe.YamlProblem as exc:
        raise UsageError(f"--schema {path}{exc.where()}: {exc.problem}") from None
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"--schema {path}: not valid JSON: {exc}") from None


def _summary_fields(result: Result) -> dict[str, Any]:
    return {
        "model": result.model_used,
        "tier": result.tier,
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "cost_usd": result.cost_usd,
        "cached": "stale" if result.stale else result.cached,
        "latency_ms": round(result.latency_ms),
        "attempts": result.attempts,
        "tiers_tried": result.tiers_tried,
        "redactions": result.redactions,
    }


def _summary(result: Result) -> str:
    usage = result.usage
    parts = [
        f"model={result.model_used}",
        f"tier={result.tier}",
        f"tokens={usage.total_tokens} (in {usage.prompt_tokens}, out {usage.completion_tokens})",
        f"cost=${result.cost_usd:.6f}",
        f"cached={'stale' if result.stale else 'yes' if result.cached else 'no'}",
        f"latency={result.latency_ms:.0f}ms",
        f"attempts={result.attempts}",
    ]
    if result.fallback_used:
        parts.append(f"fallback={'>'.join(result.tiers_tried)}")
    if result.redactions:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(result.redactions.items()))
        parts.append(f"redacted: {counts}")
    return "aicli: " + " ".join(parts)
