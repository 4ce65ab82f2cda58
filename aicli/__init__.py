"""aicli: tiered models with fallbacks, a disk cache, cost control, versioned prompt templates
and prompt regression tests, from one command line."""

__version__ = "0.1.0"

# The distribution's name on the package index: `aicli` there is another project. The command,
# `python -m aicli` and this import package keep the short name. Every install hint uses this.
DISTRIBUTION = "aicli-prod"


def install_hint(extra: str) -> str:
    """The command that installs an optional part, from the index or from a checkout."""
    return f"pip install '{DISTRIBUTION}[{extra}]' (from a checkout: pip install -e '.[{extra}]')"
