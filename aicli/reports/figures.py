"""How numbers read in every report format: pass rates, intervals, p-values, ms, signed changes."""

from __future__ import annotations


def rate(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def ms(x: float | None, *, grouped: bool = True) -> str:
    return "–" if x is None else (f"{x:,.0f} ms" if grouped else f"{x:.0f} ms")


def signed(x: float | None, fmt: str, unit: str = "", scale: float = 1.0) -> str:
    """A change with its sign (a real minus), a dash when there is nothing to compare."""
    return "–" if x is None else ("+" if x >= 0 else "−") + format(abs(x) * scale, fmt) + unit


def interval(bounds: tuple[float, float] | list[float] | None) -> str:
    """A 95% interval of a pass rate: `78.6-95.7%` (an en dash between)."""
    if bounds is None:
        return "–"
    low, high = bounds
    return f"{low * 100:.1f}–{high * 100:.1f}%"


def kn(passed: int, runs: int) -> str:
    """`7/10`: passes of runs."""
    return f"{passed}/{runs}"


def pvalue(p: float | None) -> str:
    """A p-value to three significant digits; tiny ones as `<0.0001`."""
    if p is None:
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.3g}"


def verdicts(passed: int, failed: int, errors: int, skipped: int, sep: str = " · ") -> str:
    """`0 passed · 1 failed (incl. 1 error) · 0 skipped`: an error (no answer to judge) counts
    as failed, as on the last line `N passed, N failed`, and the count says how many were."""
    why = f" (incl. {errors} error{'s' if errors != 1 else ''})" if errors else ""
    return f"{passed} passed{sep}{failed + errors} failed{why}{sep}{skipped} skipped"
