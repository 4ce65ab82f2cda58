"""aicli: tiered models with fallbacks, a disk cache, cost control, versioned prompt templates
and prompt regression tests, from one command line."""

__version__ = "0.1.0"
