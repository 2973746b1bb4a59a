"""A sweep's figures: curves over steps, and final values against the knob swept.

Each figure is built (`curves_figure`, `final_vs_knob_figure`) and then saved (`save`).
Matplotlib is imported inside the functions that draw (`_pyplot`, log_axis), so reading
runs and building the table never loads it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from src.analysis.runs import ENTROPY, EXACT, LOSS, CompareError, Curve, Run, varying_knobs
from src.analysis.summary import natural_key, succeeded, target_phrase, wilson_interval

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Knobs compare.py can plot against that are functions of a config key: the tutorial's
# softmax temperature is T = 1/scale (scale given as a number).
DERIVED = {"temperature": ("scale", lambda value: f"{1 / float(value):g}")}
MOST_CURVES = 6  # configurations in one panel of curves; more are split over panels


def _log_axis():
    """log_axis.readable_log_y, imported only to draw (log_axis loads matplotlib)."""
    from src.analysis.log_axis import readable_log_y

    return readable_log_y


def _pyplot():
    """pyplot on the Agg backend: figures are files here, drawn without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(plt, count: int):
    """A colour per line: tab10 while it suffices, tab20 beyond."""
    return plt.get_cmap("tab10" if count <= 10 else "tab20")


def _band_note(groups: list[list]) -> str:
    """What the shaded band is, said only when some configuration has more than one seed."""
    return ", band = min..max across seeds" if any(len(g) > 1 for g in groups) else ""


def save(figure: Figure, out_file: Path) -> None:
    """Write the figure as a PNG and let pyplot forget it."""
    figure.tight_layout()
    figure.savefig(out_file, dpi=110)
    _pyplot().close(figure)


def _mean_curve(curves: list[Curve]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Mean, min and max over seeds at the steps every seed logged."""
    common = sorted(set.intersection(*(set(steps) for steps, _ in curves)))
    columns = [[dict(zip(*c))[s] for c in curves] for s in common]
    means = [statistics.mean(c) for c in columns]
    return common, means, [min(c) for c in columns], [max(c) for c in columns]


class _Facet(NamedTuple):
    """One row of the curves figure: the finished runs it draws, by their legend value."""

    title: str  # the other knobs' values (`task.D=2`), and which legend values if split
    groups: dict[str, list[Run]]  # legend value -> its finished runs


def _facets(runs: list[Run], legend: str) -> list[_Facet]:
    """One panel when the sweep has at most MOST_CURVES configurations (keyed by their
    labels). Otherwise a row per combination of the knobs other than `legend`, so each
    panel's curves differ in the legend knob only (keyed `legend=value`); a row that would
    hold more than MOST_CURVES curves is split by the legend's values, in order."""
    done = [r for r in runs if r.status == "finished"]
    configurations = sorted({r.label for r in done}, key=natural_key)
    if len(configurations) <= MOST_CURVES:  # few enough for one panel: no facets needed
        return [_Facet("", {c: [r for r in done if r.label == c] for c in configurations})]
    values = sorted({knob_value(r, legend) for r in done}, key=natural_key)
    parts = math.ceil(len(values) / MOST_CURVES) or 1
    size = math.ceil(len(values) / parts) or 1
    chunks = [values[i : i + size] for i in range(0, len(values), size)] or [[]]
    others = _other_knobs(runs, legend)
    facets = []
    for combination in sorted({_combination(r, others) for r in done}, key=natural_key):
        members = [r for r in done if _combination(r, others) == combination]
        for chunk in chunks:
            groups = {
                f"{legend}={v}": [r for r in members if knob_value(r, legend) == v] for v in chunk
            }
            groups = {v: g for v, g in groups.items() if g}
            split = f"{legend} {chunk[0]}..{chunk[-1]}" if len(chunks) > 1 else ""
            if groups:
                facets.append(_Facet(", ".join(t for t in (combination, split) if t), groups))
    return facets or [_Facet("", {})]


def curves_figure(runs: list[Run], legend: str, title: str) -> Figure:
    """Val loss and attention entropy against step, mean over seeds, band = min..max: one
    curve per value of the `legend` knob, a row of panels per value of the other knobs
    (`_facets`); a legend value has one colour in every row."""
    plt = _pyplot()
    facets = _facets(runs, legend)
    values = sorted({v for f in facets for v in f.groups}, key=natural_key)
    colors = _colors(plt, len(values))
    figure, panels = plt.subplots(
        len(facets), 2, figsize=(13, 1 + 4.2 * len(facets)), sharey="col", squeeze=False
    )
    for (ax_loss, ax_entropy), facet in zip(panels, facets):
        for value, group in facet.groups.items():
            color = colors(values.index(value))
            for ax, tag in ((ax_loss, LOSS), (ax_entropy, ENTROPY)):
                curves = [r.curves[tag] for r in group if tag in r.curves and r.curves[tag][0]]
                if not curves:
                    continue
                steps, mean, low, high = _mean_curve(curves)
                size = 3 if len(steps) > 20 else 5
                ax.plot(steps, mean, color=color, marker="o", markersize=size)
                if ax is ax_loss:
                    ax.lines[-1].set_label(f"{value} (n={len(curves)})")
                ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        _label_curve_panels(ax_loss, ax_entropy, facet.title)
    others = ", ".join(_other_knobs(runs, legend))
    rows = f"; a row per {others}" if len(facets) > 1 and others else ""
    groups = [g for f in facets for g in f.groups.values()]
    figure.suptitle(f"{title}: mean over seeds{_band_note(groups)}{rows}")
    return figure


def _label_curve_panels(ax_loss, ax_entropy, facet: str) -> None:
    """Axes, titles (with the row's knob values) and legend of one row of curve panels."""
    readable_log_y = _log_axis()
    which = f": {facet}" if facet else ""
    ax_loss.set(xlabel="step", ylabel="val loss", title=f"validation loss{which}")
    readable_log_y(ax_loss)
    ax_entropy.set(
        xlabel="step",
        ylabel="normalised entropy",
        ylim=(0, 1.02),
        title=f"attention entropy (1 = uniform over visible keys){which}",
    )
    if ax_loss.lines:
        ax_loss.legend(fontsize=8)
    for ax in (ax_loss, ax_entropy):
        ax.grid(alpha=0.3)


def _number(value: str | None) -> float | None:
    """The knob's value as a number, or None when it is not one (true, null, a name)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def choose_x(runs: list[Run], x: str | None = None) -> str:
    """The knob for the final-metric plot: `x` if given, else `heads` if it varies, else the
    first varying knob with numeric values, else the first varying knob."""
    varying = varying_knobs([r.knobs for r in runs])
    if not varying:
        raise CompareError(
            "no knob varies across these runs (only the seed, if anything), so there is "
            "nothing to compare: sweep a knob, e.g. `-m heads=1,2,4 seed=0,1,2`."
        )
    if x in DERIVED and DERIVED[x][0] in varying:
        base = DERIVED[x][0]
        if all(_number(r.knobs.get(base)) for r in runs):
            return x
        raise CompareError(
            f"--x {x} needs {base} to be a positive number in every run (T = 1/scale); "
            f"found {base} = {sorted({r.knobs.get(base, '-') for r in runs})}."
        )
    if x is not None:
        if x not in varying:
            derived = [k for k, (base, _) in DERIVED.items() if base in varying]
            raise CompareError(
                f"--x {x} does not vary across these runs; the knobs that do are: "
                f"{', '.join(varying + derived)}."
            )
        return x
    if "heads" in varying:
        return "heads"
    numeric = [k for k in varying if all(_number(r.knobs.get(k)) is not None for r in runs)]
    return (numeric or varying)[0]


def knob_value(run: Run, x: str) -> str:
    """The run's value of knob `x`, derived knobs included."""
    if x in DERIVED:
        base, derive = DERIVED[x]
        return derive(run.knobs[base])
    return run.knobs.get(x, "-")


class _KnobAxis(NamedTuple):
    """The final-value plot's x axis, shared by its four panels."""

    values: list[str]  # the knob's values, in natural order
    position: dict[str, float]  # where each sits: at its number if all are numbers, else evenly
    log2: bool  # positive numbers spanning a factor of 4 or more


def _knob_axis(done: list[Run], x: str) -> _KnobAxis:
    """The axis for the values the finished runs have; none finished: no values."""
    values = sorted({knob_value(r, x) for r in done}, key=natural_key)
    numeric = bool(values) and all(_number(v) is not None for v in values)
    position = {v: (_number(v) if numeric else i) for i, v in enumerate(values)}
    spots = position.values()
    log2 = numeric and min(spots) > 0 and max(spots) >= 4 * min(spots)
    return _KnobAxis(values, position, log2)


def _success_panel(
    ax, xs: list[float], groups: list[list[Run]], color, label: str, won: Callable[[Run], bool]
) -> None:
    """The share of seeds that succeeded (`won`) at each x, with its 95% Wilson interval."""
    wins = [sum(won(r) for r in g) for g in groups]
    sizes = [len(g) for g in groups]
    rate = [w / n for w, n in zip(wins, sizes)]
    intervals = [wilson_interval(w, n) for w, n in zip(wins, sizes)]
    below = [r - lo for r, (lo, _) in zip(rate, intervals)]
    above = [hi - r for r, (_, hi) in zip(rate, intervals)]
    n = f"{min(sizes)}..{max(sizes)}" if min(sizes) != max(sizes) else f"{sizes[0]}"
    label = f"{label} (n={n})"
    ax.errorbar(xs, rate, yerr=[below, above], color=color, marker="o", capsize=3, label=label)


def _final_panel(ax, key: str, xs: list[float], groups: list[list[Run]], color) -> None:
    """A final metric at each x: the median line, a min..max band and every seed as a dot."""
    values = [[r.metrics[key] for r in g if key in r.metrics] for g in groups]
    keep = [(p, v) for p, v in zip(xs, values) if v]
    if not keep:
        return
    kept_xs = [p for p, _ in keep]
    ax.plot(kept_xs, [statistics.median(v) for _, v in keep], color=color, marker="o")
    lows, highs = [min(v) for _, v in keep], [max(v) for _, v in keep]
    ax.fill_between(kept_xs, lows, highs, color=color, alpha=0.15, linewidth=0)
    for p, v in keep:
        ax.scatter([p] * len(v), v, color=color, s=9, alpha=0.5, linewidths=0)


def _entropy_panel(ax, xs: list[float], groups: list[list[Run]], color) -> None:
    """The median attention entropy at each x: at step 0 dashed, at the end solid."""
    for index, style in ((0, "--"), (-1, "-")):
        values = [[r.curves[ENTROPY][1][index] for r in g if ENTROPY in r.curves] for g in groups]
        keep = [(p, statistics.median(v)) for p, v in zip(xs, values) if v]
        if keep:
            ax.plot(*zip(*keep), color=color, marker="o", linestyle=style)


def _label_panels(panels: Sequence, x: str, axis: _KnobAxis, goal: str) -> None:
    """Titles and y axes per panel (`goal`: what a success ends at); the knob's values as
    x ticks on every panel."""
    ax_win, ax_exact, ax_loss, ax_entropy = panels
    ax_win.set(
        ylabel=f"share of seeds ending at {goal}",
        ylim=(-0.03, 1.03),
        title="success rate, 95% Wilson interval",
    )
    ax_exact.set(ylabel="final val exact match", ylim=(-0.03, 1.03), title="exact match")
    ax_loss.set(ylabel="final val loss", title="validation loss")
    _log_axis()(ax_loss)
    ax_entropy.set(
        ylabel="normalised attention entropy",
        ylim=(-0.03, 1.03),
        title="attention entropy: step 0 (dashed), end (solid)",
    )
    name = f"{x} = 1/{DERIVED[x][0]}" if x in DERIVED else x
    for ax in panels:
        ax.set_xlabel(name + (" (log2 axis)" if axis.log2 else ""))
        if axis.log2:
            ax.set_xscale("log", base=2)
        ax.set_xticks(list(axis.position.values()), axis.values)
        if axis.log2:
            ax.minorticks_off()
        ax.grid(alpha=0.3)


def _other_knobs(runs: list[Run], x: str) -> list[str]:
    """The varying knobs besides `x` (and the knob `x` is derived from)."""
    hidden = (x, DERIVED[x][0]) if x in DERIVED else (x,)
    return [k for k in varying_knobs([r.knobs for r in runs]) if k not in hidden]


def _combination(run: Run, knobs: list[str]) -> str:
    """The run's values of `knobs`, as `k=v,...` (`` for none)."""
    return ",".join(f"{k}={run.knobs.get(k, '-')}" for k in knobs)


def _lines(
    runs: list[Run], done: list[Run], x: str, values: list[str]
) -> dict[str, dict[str, list[Run]]]:
    """{line: {x value: its finished runs there}}, a line per combination of the values of
    the other varying knobs (`k=v,...`; `` if none), each with the x values it has runs at."""
    others = _other_knobs(runs, x)
    lines = {}
    for line in sorted({_combination(r, others) for r in done}):
        members = [r for r in done if _combination(r, others) == line]
        seeds_at = {v: [r for r in members if knob_value(r, x) == v] for v in values}
        lines[line] = {v: g for v, g in seeds_at.items() if g}
    return lines


def final_vs_knob_figure(
    runs: list[Run], x: str, title: str, threshold_metric: str, threshold: float
) -> Figure:
    """Final metrics against one knob: one line per combination of the other varying knobs.

    Left: the share of seeds that succeeded, with 95% Wilson intervals (what an effect is
    claimed on). Then final exact match and val loss, median over seeds with every seed as a
    dot and a min..max band; right: the attention entropy at the start and at the end.
    """
    plt = _pyplot()
    done = [r for r in runs if r.status == "finished"]
    axis = _knob_axis(done, x)
    lines = _lines(runs, done, x, axis.values)
    colors = _colors(plt, len(lines))
    figure, panels = plt.subplots(1, 4, figsize=(21, 4.8))
    ax_win, ax_exact, ax_loss, ax_entropy = panels

    def won(run: Run) -> bool:
        return succeeded(run, threshold_metric, threshold)

    groups = []
    for i, (line, seeds_at) in enumerate(lines.items()):
        seeds = list(seeds_at.values())
        groups += seeds
        xs = [axis.position[v] for v in seeds_at]
        _success_panel(ax_win, xs, seeds, colors(i), line or "all runs", won)
        for ax, key in ((ax_exact, EXACT), (ax_loss, LOSS)):
            _final_panel(ax, key, xs, seeds, colors(i))
        _entropy_panel(ax_entropy, xs, seeds, colors(i))
    _label_panels(panels, x, axis, target_phrase(threshold_metric, threshold))
    if lines:
        ax_win.legend(fontsize=8)
    figure.suptitle(
        f"{title}: final values against {x}; median over seeds, dots = seeds{_band_note(groups)}"
    )
    return figure
