"""`aicli config path | show`: which config file is in use, and the effective config."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aicli.cli import options
from aicli.cli.output import handle_errors, info, out

if TYPE_CHECKING:
    from aicli.config import Config

config_app = typer.Typer(no_args_is_help=True)


@config_app.callback()
def _group(
    ctx: typer.Context,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
) -> None:
    """Show which config file aicli uses and what it holds after defaults are applied.

    aicli reads the first of: --config PATH, $AICLI_CONFIG, ./aicli.yaml,
    $XDG_CONFIG_HOME/aicli/config.yaml (~/.config/aicli/config.yaml), the built-in defaults.
    """
    options.pass_config_down(ctx, config, log_format)


@config_app.command("path", short_help="Print the config file in use, and why.")
def path(
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Print the path of the config file in use (nothing when the built-in defaults are used);
    stderr says why that file was chosen."""
    with handle_errors(debug, log_format=log_format):
        from aicli.config import find_config

        found, why = find_config(config)
        if found is None:
            info("aicli: no config file: using the built-in defaults (see aicli config show)")
            return
        out(str(found.resolve()))
        info(f"aicli: chosen by {why}")


@config_app.command("show", short_help="Print the effective config as YAML.")
def show(
    defaults: Annotated[
        bool,
        typer.Option(
            "--defaults", help="Print the built-in defaults file, with a comment on every key."
        ),
    ] = False,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Print the effective config as YAML: every tier with `defaults` applied.

    Keys never appear: a provider shows only `api_key_env`, the NAME of the variable holding its
    key, and a base_url's user:password@ is hidden. --defaults prints the built-in defaults
    (the documented starting point for your own aicli.yaml).
    """
    with handle_errors(debug, log_format=log_format):
        from aicli.config import DEFAULTS_FILE, load_config

        if defaults:
            out(DEFAULTS_FILE.read_text(encoding="utf-8").rstrip("\n"))
            return
        import yaml

        cfg = load_config(config)
        origin = "" if cfg.origin == cfg.source else f" ({cfg.origin})"
        out(f"# effective config from {cfg.source}{origin}")
        out(yaml.safe_dump(effective(cfg), sort_keys=False, allow_unicode=True).rstrip("\n"))


def effective(cfg: Config) -> dict[str, Any]:
    """The config as data after defaults and inheritance, its sections in the order of the
    built-in defaults file; no key values (a config never holds any)."""
    from aicli.config import DEFAULTS_FILE
    from aicli.scrub import without_credentials
    from aicli.yamlsafe import load

    shown: dict[str, Any] = {}
    for section in load(DEFAULTS_FILE.read_text(encoding="utf-8")):
        value: Any = getattr(cfg, section, None)
        if section == "providers":
            providers = {}
            for name, provider in cfg.providers.items():
                data = {k: v for k, v in asdict(provider).items() if v is not None}
                if provider.type != "echo":
                    data["base_url"] = without_credentials(cfg.base_url(name))
                providers[name] = data
            shown[section] = providers
        elif section == "tiers":
            shown[section] = {name: _tier(tier) for name, tier in cfg.tiers.items()}
        elif isinstance(value, Path):
            shown[section] = str(value)
        elif is_dataclass(value) and not isinstance(value, type):
            shown[section] = asdict(value)
        elif value is not None:
            shown[section] = value
    return shown


def _tier(tier: Any) -> dict[str, Any]:
    data = asdict(tier)
    first = {k: data.pop(k) for k in ("model", "provider", "fallback", "price")}
    return {**first, **data}
