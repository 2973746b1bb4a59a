"""The sweep's table: one row per configuration, counted over its seeds.

A claim rests on how many seeds succeeded, so each row leads with a success count and its
95% Wilson interval; the final values follow as median [min, max], a spread one odd seed
cannot hide in a standard deviation.
"""

from __future__ import annotations

import math
import re
import statistics

from src.analysis import metric_names as names
from src.analysis.runs import ENTROPY, EXACT, LOSS, SATURATED, Curve, Run, status_counts

EARLY_STEPS = 100  # "early on": gradient norms are averaged over the first steps
MATTERS = 0.1  # nats: a head "matters" when knocking it out raises the val loss by more
KNOCKOUT_COUNT = f"heads whose knock-out costs > {MATTERS:g}, per layer"  # _mattering's column


def lower_is_better(metric: str) -> bool:
    """A loss succeeds by falling to the threshold, anything else by rising to it."""
    return "loss" in metric


def target_phrase(threshold_metric: str, threshold: float) -> str:
    """`val/exact_match ≥ 0.9`: what a run must end at to count as a success."""
    return f"{threshold_metric} {'≤' if lower_is_better(threshold_metric) else '≥'} {threshold:g}"


def natural_key(label: str) -> list[tuple[int, float, str]]:
    """Numbers in numeric order (lr=0.003 before lr=10), everything else alphabetically."""
    key = []
    for part in label.replace("=", ",").split(","):
        try:
            key.append((0, float(part), ""))
        except ValueError:
            key.append((1, 0.0, part))
    return key


def steps_to_reach(curve: Curve | None, threshold: float, below: bool) -> int | None:
    """The first step at which the curve reaches the threshold, or None."""
    if curve is None:
        return None
    for step, value in zip(*curve):
        if (value <= threshold) if below else (value >= threshold):
            return step
    return None


def succeeded(run: Run, threshold_metric: str, threshold: float) -> bool:
    """Whether the run's final value of the metric reached the threshold."""
    value = run.metrics.get(threshold_metric)
    if value is None:
        return False
    return value <= threshold if lower_is_better(threshold_metric) else value >= threshold


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a success rate: honest at 0/n and n/n, unlike p ± 2se."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # clamped to hold p itself: at 0/n and n/n rounding can put a bound a hair past it
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def early_qk_grad(run: Run) -> float | None:
    """Mean |grad| of W_q and W_k over all layers during the first EARLY_STEPS steps."""
    values = [
        v
        for tag, (steps, vals) in run.curves.items()
        if names.matches(names.GRAD_QUERY_KEY, tag)
        for s, v in zip(steps, vals)
        if s <= EARLY_STEPS
    ]
    return statistics.mean(values) if values else None


def knockout_rises(run: Run) -> list[list[float]]:
    """The run's val-loss rise for each head knocked out (HeadKnockout): a list per layer,
    from layer 0 on, its heads in any order; [] if the run logged no knock-out."""
    layers = []
    while True:
        layer = re.compile(names.pattern(names.KNOCKOUT_HEAD, layer=len(layers)))
        rises = [values[-1] for tag, (_, values) in run.curves.items() if layer.fullmatch(tag)]
        if not rises:
            return layers
        layers.append(rises)


def _mattering(rises: list[list[list[float]]]) -> str:
    """How many heads of each layer cost more than MATTERS when knocked out, over the seeds
    (`rises`: knockout_rises of each): `1; 2 of 4` is 1 head in layer 0 and 2 in layer 1,
    of the 4 each layer has; each count as _spread gives it."""
    if not rises:
        return "—"
    depth, width = max(map(len, rises)), max(len(layer) for r in rises for layer in r)
    counts = [
        _spread([float(sum(x > MATTERS for x in r[layer])) for r in rises if layer < len(r)])
        for layer in range(depth)
    ]
    return f"{'; '.join(counts)} of {width}"


def _spread(values: list[float], centre: str = "median") -> str:
    """`median [min, max]` (a spread one odd seed cannot hide in a standard deviation), or
    `mean ± std` with centre="mean"; a single value as it is, none as "—"."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3g}"
    if centre == "mean":
        return f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}"
    return f"{statistics.median(values):.3g} [{min(values):.2g}, {max(values):.2g}]"


def _finals(runs: list[Run], tag: str) -> list[float]:
    """The last logged value of a curve, for each run that logged it."""
    return [r.curves[tag][1][-1] for r in runs if tag in r.curves]


def summarise(
    runs: list[Run], threshold_metric: str = EXACT, threshold: float = 0.9
) -> list[dict[str, str]]:
    """One row per configuration: success count with its 95% interval, medians and ranges."""
    below = lower_is_better(threshold_metric)
    reach = target_phrase(threshold_metric, threshold)
    rows = []
    for label in sorted({r.label for r in runs}, key=natural_key):
        group = [r for r in runs if r.label == label]
        done = [r for r in group if r.status == "finished"]
        wins = sum(succeeded(r, threshold_metric, threshold) for r in done)
        low, high = wilson_interval(wins, len(done))
        reached = [steps_to_reach(r.curves.get(threshold_metric), threshold, below) for r in done]
        hit = [s for s in reached if s is not None]
        rises = [knockout_rises(r) for r in done]
        rises = [r for r in rises if r]
        rows.append(
            {
                "configuration": label,
                f"runs ending at {reach} [95% CI]": f"{wins}/{len(done)} [{low:.2f}, {high:.2f}]",
                "exact match, median [min, max]": _spread(
                    [r.metrics[EXACT] for r in done if EXACT in r.metrics]
                ),
                "val loss, median [min, max]": _spread(
                    [r.metrics[LOSS] for r in done if LOSS in r.metrics]
                ),
                f"steps to reach {reach}": (
                    f"{statistics.median(hit):.0f} ({len(hit)}/{len(done)})"
                    if hit
                    else f"— (0/{len(done)})"
                ),
                "attn entropy": _spread(_finals(done, ENTROPY), "mean"),
                "saturated rows": _spread(_finals(done, SATURATED), "mean"),
                f"W_q,W_k grad, steps ≤{EARLY_STEPS}": _spread(
                    [g for g in map(early_qk_grad, done) if g is not None], "mean"
                ),
                "knock-out: largest loss rise": _spread([max(map(max, r)) for r in rises]),
                KNOCKOUT_COUNT: _mattering(rises),
                "seeds": f"{len(done)}/{len(group)}{status_counts(group)}",
            }
        )
    return rows


def how_to_read(threshold_metric: str, threshold: float) -> str:
    """The paragraph above the table in summary.md: what each column counts."""
    return (
        "Per configuration (the config keys that differ between runs, seed aside): how many "
        f"finished runs ended at {target_phrase(threshold_metric, threshold)}, "
        "with a 95% Wilson interval; medians [min, max] of the final values; "
        "mean ± std for the attention statistics; knock-out = the val-loss rise when one head "
        "is zeroed (largest over heads, and how many heads of each layer cost more than "
        f"{MATTERS:g} nats: `1; 2 of 4` is 1 in layer 0 and 2 in layer 1, of 4 heads per layer); "
        "`seeds` = finished/all runs, and how the others ended."
    )


def markdown_table(rows: list[dict[str, str]]) -> str:
    """The rows as a Markdown table, columns in the order of the first row's keys."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]
    return "\n".join(lines)
