"""Versioned prompt templates: discovery, semver, sandboxed rendering, checksums and the lock.

The public API lives here; the pieces are in model (file schema, semver, checksum), store
(discovery, NAME[@VERSION], what the lock records), lockfile (prompts.lock on disk), variables
(sources and JSON Schema checks), sandbox (bounded Jinja2) and rendering (Rendered, render,
render_inline).
"""

from aicli.templates.lockfile import LOCK_NAME
from aicli.templates.model import Template, semver_key
from aicli.templates.rendering import Rendered, render, render_inline
from aicli.templates.store import TemplateStore
from aicli.templates.variables import collect_variables, load_vars_file, parse_var_args

__all__ = [
    "LOCK_NAME",
    "Rendered",
    "Template",
    "TemplateStore",
    "collect_variables",
    "load_vars_file",
    "parse_var_args",
    "render",
    "render_inline",
    "semver_key",
]
