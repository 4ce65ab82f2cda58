"""`aicli serve`: runs the HTTP service (OpenAI-compatible API, /generate, /health, /metrics)."""

from __future__ import annotations

from typing import Annotated

import typer

from aicli.cli import options
from aicli.cli.output import handle_errors, info, use_log_format


def serve(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="ADDR",
            help="Address to listen on; other than loopback it needs bearer tokens "
            "(serve.tokens_env).",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", metavar="N", min=0, max=65535, help="TCP port.")
    ] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", "-w", metavar="N", min=1, max=64, help="Worker processes.")
    ] = 1,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Serve the engine over HTTP: POST /generate, POST /v1/chat/completions (OpenAI-compatible,
    `model` names a tier), GET /v1/models, /health, /health/live, /health/ready, /metrics.

    \b
    Examples:
      aicli serve                                   # http://127.0.0.1:8000, no auth, loopback only
      AICLI_SERVE_TOKENS=s3cret aicli serve --host 0.0.0.0 --workers 2
      curl -s localhost:8000/generate -d '{"prompt": "Hello"}' -H 'content-type: application/json'
    """
    import os

    # A refusal to start is read by the person who typed the command: the usual one
    # `aicli: error:` line. Once serving, the service logs JSON lines (one per request), and
    # the few lines of its own match them, unless --log-format / $AICLI_LOG_FORMAT says text.
    asked = log_format or os.environ.get("AICLI_LOG_FORMAT") or None
    with handle_errors(debug, log_format=log_format):
        from importlib.util import find_spec

        from aicli import install_hint
        from aicli.config import load_config
        from aicli.errors import UsageError

        cfg = load_config(config)
        # find_spec, not import: prometheus_client must first see its multiprocess directory
        missing = [
            m for m in ("fastapi", "uvicorn", "prometheus_client", "aiohttp") if not find_spec(m)
        ]
        if missing:
            raise UsageError(
                f"aicli serve needs the 'serve' extra ({', '.join(missing)} not installed)",
                install_hint("serve"),
            )
        from aicli.cache import require_backend_package
        from aicli.serve.runner import check_bind, run

        require_backend_package(cfg)  # a worker would fail at start-up instead

        check_bind(cfg, host)
        if asked is None:
            use_log_format("json")
        shown = f"[{host}]" if ":" in host else host

        def starting(bound: int) -> None:  # once the port is known to be free (and chosen)
            info(
                f"aicli: serving on http://{shown}:{bound} ({workers} worker(s)); Ctrl-C to stop",
                "serve.start",
                host=host,
                port=bound,
                workers=workers,
            )

        run(cfg, host=host, port=port, workers=workers, on_start=starting)
