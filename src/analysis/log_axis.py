"""A log axis that can be read at any span. Matplotlib labels decades only, so a loss
between 0.05 and 0.4 showed one label, `0.1`, and one within a decade showed none.

Imports matplotlib: plots.py imports this module only inside the functions that draw.
"""

from __future__ import annotations

import math

from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

MOST_DECADES = 8  # labelled decades on one axis; beyond, every other one


def log_ticks(low: float, high: float) -> list[float]:
    """Tick values inside [low, high] (0 < low < high), at least 3 where 3 exist: decades,
    else 1-2-5 or finer steps within each decade, else round numbers evenly spaced (for a
    range narrower than from one leading digit to the next)."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for digits in ((1,), (1, 2, 5), (1, 2, 3, 5), range(1, 10)):
        ticks = [d * 10.0**e for e in range(first, last + 1) for d in digits]
        inside = [t for t in ticks if low <= t <= high]
        if len(inside) >= 3:
            return inside[:: math.ceil(len(inside) / MOST_DECADES)] if digits == (1,) else inside
    for bins in range(4, 10):
        even = MaxNLocator(nbins=bins, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
        inside = [float(t) for t in even if low <= t <= high]
        if len(inside) >= 3:
            break
    return inside


class _ReadableLogTicks(LogLocator):
    """`log_ticks` for the range the axis shows when drawn; matplotlib's own otherwise."""

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        low, high = sorted((vmin, vmax))
        if not 0 < low < high < math.inf:
            return super().tick_values(vmin, vmax)
        return log_ticks(low, high)


def readable_log_y(ax) -> None:
    """A log y axis with several labels inside whatever range it ends up showing, written
    as plain numbers (0.5, 0.001, 2.5e-05), not 6.56×10^-1; the minor ticks unlabelled."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(_ReadableLogTicks())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
