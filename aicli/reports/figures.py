"""How numbers read in every report format: pass rates, milliseconds, signed changes."""

from __future__ import annotations


def rate(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def ms(x: float | None, *, grouped: bool = True) -> str:
    return "–" if x is None else (f"{x:,.0f} ms" if grouped else f"{x:.0f} ms")


def signed(x: float | None, fmt: str, unit: str = "", scale: float = 1.0) -> str:
    """A change with its sign (a real minus), a dash when there is nothing to compare."""
    return "–" if x is None else ("+" if x >= 0 else "−") + format(abs(x) * scale, fmt) + unit
