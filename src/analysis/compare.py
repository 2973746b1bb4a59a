"""Read a sweep's runs and summarise them: curves per configuration, mean over seeds.

A run is a folder with `.hydra/` (written by Hydra before the run starts); it counts as
finished when its `metrics.json` says so. Metrics come from `metrics.json`, curves from the
TensorBoard events through TensorBoard's own reader; a copied or resumed run's curves come
(partly) from the run its record points to (`run_curves`). A record or config that cannot be
read is named in the output instead of stopping the comparison (`load_runs`).
"""

from __future__ import annotations

import math
import shutil
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from src.analysis import metric_names as names
from src.runs.folders import results_dir
from src.runs.records import read_config, read_experiment, read_record

LOSS, EXACT = names.VAL_LOSS, names.VAL_EXACT_MATCH
ENTROPY, SATURATED = names.ATTN_ENTROPY, names.ATTN_SATURATED
EARLY_STEPS = 100  # "early on": gradient norms are averaged over the first steps
MATTERS = 0.1  # nats: a head "matters" when knocking it out raises the val loss by more


class CompareError(ValueError):
    """The folder cannot be compared; the message says why."""


@dataclass
class Run:
    path: Path
    label: str  # the configuration: the run's overrides without the seed
    seed: str
    task: str
    # finished | diverged | refused (a bad value) | failed | running (still, or killed:
    # metrics.json is written at the start) | unfinished (no metrics.json: never started) |
    # damaged (a metrics.json that cannot be read as a record; see read_record)
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    knobs: dict[str, str] = field(default_factory=dict)  # the run's config, flattened
    experiment: str | None = None  # the `experiment=NAME` it was started with


NOT_A_KNOB = ("seed", "ckpt_path", "paths", "hydra", "compile")  # never what is compared


def _flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{dotted.key: value as the user would type it} for every leaf of a run's config."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if not prefix and key in NOT_A_KNOB:
            continue
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, bool):
            flat[name] = "true" if value else "false"
        elif value is None:
            flat[name] = "null"
        else:
            flat[name] = str(value)
    return flat


def varying_knobs(configs: list[dict[str, str]]) -> list[str]:
    """The config keys whose values differ between runs, the seed aside."""
    keys = sorted({k for c in configs for k in c})
    return [k for k in keys if len({c.get(k, "-") for c in configs}) > 1]


def _labels(configs: list[dict[str, str]]) -> list[str]:
    """Name each run by the config keys that differ across the runs, seed aside."""
    varying = varying_knobs(configs)
    return [",".join(f"{k}={c.get(k, '-')}" for k in varying) or "all runs" for c in configs]


def wanted(tag: str) -> bool:
    """Whether compare reads this scalar: the val loss and exact match, the attention's
    entropy and saturation over all heads, W_q/W_k gradient norms, and the knock-out."""
    return (
        tag in (LOSS, EXACT, ENTROPY, SATURATED, names.KNOCKOUT_BASE_LOSS)
        or names.matches(names.KNOCKOUT_HEAD, tag)
        or names.matches(names.GRAD_QUERY_KEY, tag)
    )


Curves = dict[str, tuple[list[int], list[float]]]  # tag -> (steps, values)


def read_curves(path: Path) -> Curves:
    """Every scalar compare needs (`wanted`), as (steps, values), through TensorBoard's own
    reader."""
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    events = EventAccumulator(str(path), size_guidance={SCALARS: 0})  # 0: keep every point
    events.Reload()
    curves = {}
    for tag in events.Tags()["scalars"]:
        if wanted(tag):
            points = events.Scalars(tag)
            # Lightning logs the module's metrics at the finished batch counted from 0; the
            # callbacks (attn/*, grad/*) at the number of optimizer steps taken. Count steps taken.
            shift = 1 if tag in names.LOGGED_BY_LIGHTNING else 0
            curves[tag] = ([p.step + shift for p in points], [p.value for p in points])
    return curves


def run_curves(run_dir: Path, notes: list[str], seen: frozenset[Path] = frozenset()) -> Curves:
    """The run's curves, wherever they were logged. A copied run (`copied_from` in its
    record) was not trained again and has no events: its original's curves are its own. A
    resumed run (`resumed_from`: `<earlier run>/checkpoints/last.ckpt`) logged only from the
    checkpoint on: the earlier run's points come first (`stitch`). Both are followed as far
    as they go; a folder that is gone leaves a line in `notes` and the curves without it."""
    record = read_record(run_dir)[0] or {}
    seen = seen | {run_dir.resolve()}
    copied, resumed = record.get("copied_from"), record.get("resumed_from")
    if copied:
        origin = Path(copied)
        if origin.is_dir() and origin.resolve() not in seen:
            return run_curves(origin, notes, seen)
        notes.append(f"no curves for {run_dir}: it was copied from {origin}, {_gone(origin)}")
        return {}
    own = read_curves(run_dir)
    if resumed:
        earlier = Path(resumed).parent.parent
        if earlier.is_dir() and earlier.resolve() not in seen:
            return stitch(run_curves(earlier, notes, seen), own)
        notes.append(
            f"curves of {run_dir} start where it resumed: the run it resumed, {earlier}, "
            f"{_gone(earlier)}"
        )
    return own


def _gone(folder: Path) -> str:
    return "which is gone" if not folder.is_dir() else "which leads back to this run"


def stitch(earlier: Curves, resumed: Curves) -> Curves:
    """A resumed run's curves: per tag, the earlier run's points before the first step the
    resumed run logged, then the resumed run's. The earlier run may have logged past its
    last checkpoint before it was killed; those steps were trained again, so they are not
    its to show."""
    curves = dict(earlier)
    for tag, (steps, values) in resumed.items():
        if not steps:
            continue
        before = [(s, v) for s, v in zip(*earlier.get(tag, ([], []))) if s < min(steps)]
        curves[tag] = ([s for s, _ in before] + steps, [v for _, v in before] + values)
    return curves


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


def load_runs(sweep_dir: Path, notes: list[str] | None = None) -> list[Run]:
    """Every run below `sweep_dir`, finished or not, each folder once (the folders that a
    copied or resumed run points to are read for curves only). What cannot be read as it is
    gets one line in `notes`: a damaged metrics.json counts its run as `damaged`; a run whose
    .hydra/config.yaml is damaged is skipped, as without its config it belongs to no
    configuration, and perhaps not to this task; a damaged hydra.yaml leaves no experiment."""
    notes = [] if notes is None else notes
    paths = sorted(h.parent for h in sweep_dir.rglob(".hydra") if h.is_dir())
    configs, skipped = {}, []
    for path in paths:
        config, why = read_config(path)
        if config is None:
            skipped.append(f"damaged config: {path / '.hydra' / 'config.yaml'} ({why})")
            notes.append(f"{skipped[-1]}; run skipped")
        else:
            configs[path] = config
    flat = [_flatten(c) for c in configs.values()]
    runs = []
    for (path, config), label, knobs in zip(configs.items(), _labels(flat), flat):
        target = config["task"].get("_target_") if isinstance(config.get("task"), dict) else None
        task = str(target or "?").rsplit(".", 1)[-1]
        record, why = read_record(path)
        status, metrics = "unfinished", {}
        if record is not None:
            status, metrics = record.get("status", "finished"), record.get("metrics", {})
        elif why is not None:
            status = "damaged"
            notes.append(f"damaged record: {path / 'metrics.json'} ({why}); counted as damaged")
        experiment, why = read_experiment(path)
        if why is not None:
            hydra_yaml = path / ".hydra" / "hydra.yaml"
            notes.append(f"damaged config: {hydra_yaml} ({why}); its experiment taken as none")
        curves = run_curves(path, notes)
        seed = str(config.get("seed", "0"))
        runs.append(Run(path, label, seed, task, status, metrics, curves, knobs, experiment))
    if skipped and not runs:
        raise CompareError(
            f"no runs to compare in {sweep_dir}: none of its {len(skipped)} run folders has a "
            f"readable .hydra/config.yaml; the first: {skipped[0]}."
        )
    if not runs:
        raise CompareError(
            f"no runs found in {sweep_dir}: expected run folders with a .hydra/ folder inside, "
            "as written by `python scripts/train.py -m ...` (look under logs/multiruns/)."
        )
    tasks = sorted({r.task for r in runs})
    if len(tasks) > 1:
        counts = ", ".join(f"{t}: {sum(r.task == t for r in runs)} runs" for t in tasks)
        raise CompareError(
            f"the runs in {sweep_dir} mix tasks ({counts}); "
            "their losses are not comparable. Compare one task's sweep at a time."
        )
    return runs


def status_counts(runs: list[Run]) -> str:
    """` (diverged: 1, running: 2)`: how many runs ended otherwise than finished; `` if none."""
    counts = Counter(r.status for r in runs if r.status != "finished")
    return f" ({', '.join(f'{s}: {n}' for s, n in sorted(counts.items()))})" if counts else ""


def steps_to_reach(
    curve: tuple[list[int], list[float]] | None, threshold: float, below: bool
) -> int | None:
    """The first step at which the curve reaches the threshold, or None."""
    if curve is None:
        return None
    for step, value in zip(*curve):
        if (value <= threshold) if below else (value >= threshold):
            return step
    return None


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


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a success rate: honest at 0/n and n/n, unlike p ± 2se."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _finals(runs: list[Run], tag: str) -> list[float]:
    return [r.curves[tag][1][-1] for r in runs if tag in r.curves]


def knockout_rises(run: Run) -> list[float]:
    """The run's val-loss rise for each head knocked out (HeadKnockout), any order."""
    return [
        values[-1]
        for tag, (_, values) in run.curves.items()
        if names.matches(names.KNOCKOUT_HEAD, tag)
    ]


def succeeded(run: Run, threshold_metric: str, threshold: float) -> bool:
    """Whether the run's final value of the metric reached the threshold."""
    value = run.metrics.get(threshold_metric)
    if value is None:
        return False
    return value <= threshold if "loss" in threshold_metric else value >= threshold


def summarise(
    runs: list[Run], threshold_metric: str = EXACT, threshold: float = 0.9
) -> list[dict[str, str]]:
    """One row per configuration: success count with its 95% interval, medians and ranges."""
    below = "loss" in threshold_metric
    reach = f"{threshold_metric} {'≤' if below else '≥'} {threshold:g}"
    rows = []
    for label in sorted({r.label for r in runs}, key=_natural_key):
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
                "knock-out: largest loss rise": _spread([max(r) for r in rises]),
                f"heads whose knock-out costs > {MATTERS:g}": _spread(
                    [float(sum(x > MATTERS for x in r)) for r in rises]
                ),
                "seeds": f"{len(done)}/{len(group)}{status_counts(group)}",
            }
        )
    return rows


def _natural_key(label: str) -> list[tuple[int, float, str]]:
    """Numbers in numeric order (lr=0.003 before lr=10), everything else alphabetically."""
    key = []
    for part in label.replace("=", ",").split(","):
        try:
            key.append((0, float(part), ""))
        except ValueError:
            key.append((1, 0.0, part))
    return key


def markdown_table(rows: list[dict[str, str]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]
    return "\n".join(lines)


def _mean_curve(curves: list[tuple[list[int], list[float]]]):
    """Mean, min and max over seeds at the steps every seed logged."""
    common = sorted(set.intersection(*(set(steps) for steps, _ in curves)))
    columns = [[dict(zip(*c))[s] for c in curves] for s in common]
    return (
        common,
        [statistics.mean(c) for c in columns],
        [min(c) for c in columns],
        [max(c) for c in columns],
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_ticks(ax, axis: str = "y") -> None:
    """Tick labels as plain numbers (0.5, 0.001), not 6.56×10^-1, on log axes too."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(plain)
    target.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def _band_note(groups: list[list]) -> str:
    """What the shaded band is, said only when some configuration has more than one seed."""
    return ", band = min..max across seeds" if any(len(g) > 1 for g in groups) else ""


def plot(runs: list[Run], out_file: Path, title: str) -> None:
    """Val loss and attention entropy against step: mean over seeds, band = min..max."""
    plt = _pyplot()
    figure, (ax_loss, ax_entropy) = plt.subplots(1, 2, figsize=(13, 5))
    labels = sorted({r.label for r in runs}, key=_natural_key)
    colors = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    groups = []
    for i, label in enumerate(labels):
        group = [r for r in runs if r.label == label and r.status == "finished"]
        groups.append(group)
        for ax, tag in ((ax_loss, LOSS), (ax_entropy, ENTROPY)):
            curves = [r.curves[tag] for r in group if tag in r.curves and r.curves[tag][0]]
            if not curves:
                continue
            steps, mean, low, high = _mean_curve(curves)
            ax.plot(
                steps, mean, color=colors(i), marker="o", markersize=3 if len(steps) > 20 else 5
            )
            ax.lines[-1].set_label(f"{label} (n={len(curves)})")
            ax.fill_between(steps, low, high, color=colors(i), alpha=0.2, linewidth=0)
    ax_loss.set(xlabel="step", ylabel="val loss", yscale="log", title="validation loss")
    _plain_ticks(ax_loss)
    ax_entropy.set(
        xlabel="step",
        ylabel="normalised entropy",
        ylim=(0, 1.02),
        title="attention entropy (1 = uniform over visible keys)",
    )
    if ax_loss.lines:
        ax_loss.legend(fontsize=8)
    for ax in (ax_loss, ax_entropy):
        ax.grid(alpha=0.3)
    figure.suptitle(f"{title}: mean over seeds{_band_note(groups)}")
    figure.tight_layout()
    figure.savefig(out_file, dpi=110)
    plt.close(figure)


# Knobs compare.py can plot against that are functions of a config key: the tutorial's
# softmax temperature is T = 1/scale (scale given as a number).
DERIVED = {"temperature": ("scale", lambda value: f"{1 / float(value):g}")}


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


def _number(value: str | None) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def plot_final_vs_knob(
    runs: list[Run], x: str, out_file: Path, title: str, threshold_metric: str, threshold: float
) -> None:
    """Final metrics against one knob: one line per combination of the other varying knobs.

    Left: the share of seeds that succeeded, with 95% Wilson intervals (what an effect is
    claimed on). Middle and right: final exact match and val loss, median over seeds with
    every seed as a dot and a min..max band.
    """
    plt = _pyplot()
    hidden = (x, DERIVED[x][0]) if x in DERIVED else (x,)
    others = [k for k in varying_knobs([r.knobs for r in runs]) if k not in hidden]
    done = [r for r in runs if r.status == "finished"]
    xs = sorted({knob_value(r, x) for r in done}, key=_natural_key)
    numeric = bool(xs) and all(_number(v) is not None for v in xs)  # none: nothing finished
    position = {v: (_number(v) if numeric else i) for i, v in enumerate(xs)}
    log2 = (
        numeric
        and min(position.values()) > 0
        and max(position.values()) >= 4 * min(position.values())
    )

    def line_of(run: Run) -> str:  # the run's values of the other varying knobs
        return ",".join(f"{k}={run.knobs.get(k, '-')}" for k in others)

    lines = sorted({line_of(r) for r in done})
    colors = plt.get_cmap("tab10" if len(lines) <= 10 else "tab20")
    figure, (ax_win, ax_exact, ax_loss, ax_entropy) = plt.subplots(1, 4, figsize=(21, 4.8))
    groups = []
    for i, line in enumerate(lines):
        members = [r for r in done if line_of(r) == line]
        label = line or "all runs"
        at = {v: [r for r in members if knob_value(r, x) == v] for v in xs}
        at = {v: g for v, g in at.items() if g}
        groups += list(at.values())
        px = [position[v] for v in at]
        wins = [sum(succeeded(r, threshold_metric, threshold) for r in g) for g in at.values()]
        sizes = [len(g) for g in at.values()]
        rate = [w / n for w, n in zip(wins, sizes)]
        intervals = [wilson_interval(w, n) for w, n in zip(wins, sizes)]
        ax_win.errorbar(
            px,
            rate,
            yerr=[
                [r - lo for r, (lo, _) in zip(rate, intervals)],
                [hi - r for r, (_, hi) in zip(rate, intervals)],
            ],
            color=colors(i),
            marker="o",
            capsize=3,
            label=f"{label} (n={min(sizes)}..{max(sizes)})"
            if min(sizes) != max(sizes)
            else f"{label} (n={sizes[0]})",
        )
        for ax, key in ((ax_exact, EXACT), (ax_loss, LOSS)):
            values = [[r.metrics[key] for r in g if key in r.metrics] for g in at.values()]
            keep = [(p, v) for p, v in zip(px, values) if v]
            if not keep:
                continue
            kx = [p for p, _ in keep]
            ax.plot(kx, [statistics.median(v) for _, v in keep], color=colors(i), marker="o")
            ax.fill_between(
                kx,
                [min(v) for _, v in keep],
                [max(v) for _, v in keep],
                color=colors(i),
                alpha=0.15,
                linewidth=0,
            )
            for p, v in keep:
                ax.scatter([p] * len(v), v, color=colors(i), s=9, alpha=0.5, linewidths=0)
        for index, style in ((0, "--"), (-1, "-")):  # entropy at step 0 and at the end
            values = [
                [r.curves[ENTROPY][1][index] for r in g if ENTROPY in r.curves] for g in at.values()
            ]
            keep = [(p, statistics.median(v)) for p, v in zip(px, values) if v]
            if keep:
                ax_entropy.plot(*zip(*keep), color=colors(i), marker="o", linestyle=style)
    below = "loss" in threshold_metric
    ax_win.set(
        ylabel=f"share of seeds ending at {threshold_metric} {'≤' if below else '≥'} {threshold:g}",
        ylim=(-0.03, 1.03),
        title="success rate, 95% Wilson interval",
    )
    ax_exact.set(ylabel="final val exact match", ylim=(-0.03, 1.03), title="exact match")
    ax_loss.set(ylabel="final val loss", yscale="log", title="validation loss")
    _plain_ticks(ax_loss)
    ax_entropy.set(
        ylabel="normalised attention entropy",
        ylim=(-0.03, 1.03),
        title="attention entropy: step 0 (dashed), end (solid)",
    )
    for ax in (ax_win, ax_exact, ax_loss, ax_entropy):
        name = f"{x} = 1/{DERIVED[x][0]}" if x in DERIVED else x
        ax.set_xlabel(name + (" (log2 axis)" if log2 else ""))
        if log2:
            ax.set_xscale("log", base=2)
        ax.set_xticks(list(position.values()), xs)
        if log2:
            ax.minorticks_off()
        ax.grid(alpha=0.3)
    if lines:
        ax_win.legend(fontsize=8)
    figure.suptitle(
        f"{title}: final values against {x}; median over seeds, dots = seeds{_band_note(groups)}"
    )
    figure.tight_layout()
    figure.savefig(out_file, dpi=110)
    plt.close(figure)


def experiment_name(runs: list[Run]) -> str | None:
    """The experiment every run was started with (`experiment=NAME`), or None."""
    names = {r.experiment for r in runs}
    return names.pop() if len(names) == 1 else None


def compare(
    sweep_dir: Path,
    threshold_metric: str = EXACT,
    threshold: float = 0.9,
    x: str | None = None,
    publish: bool = False,
) -> str:
    """Write loss_curves.png, final_vs_<knob>.png and summary.md into `sweep_dir`; return
    the table, then a line for each record that could not be read as it is (load_runs,
    run_curves), which summary.md keeps too. `publish`: copy them to the experiment's results
    folder too (run_dirs)."""
    notes: list[str] = []
    runs = load_runs(sweep_dir, notes)
    experiment = experiment_name(runs)
    if publish and experiment is None:
        found = sorted({str(r.experiment) for r in runs})
        raise CompareError(
            f"--publish files a sweep under its experiment's results folder, but the runs in "
            f"{sweep_dir} were not all started with one experiment=NAME (found: "
            f"{', '.join(found)}). Publish a sweep of `-m experiment=NAME` instead."
        )
    knob = choose_x(runs, x)
    rows = summarise(runs, threshold_metric, threshold)
    table = markdown_table(rows)
    task = runs[0].task
    plot(runs, sweep_dir / "loss_curves.png", f"{task} ({len(runs)} runs)")
    final_plot = sweep_dir / f"final_vs_{knob}.png"
    plot_final_vs_knob(runs, knob, final_plot, task, threshold_metric, threshold)
    finished = sum(r.status == "finished" for r in runs)
    (sweep_dir / "summary.md").write_text(
        f"# {experiment or sweep_dir.name}: {task}, {finished}/{len(runs)} runs finished"
        f"{status_counts(runs)}\n\n"
        "Per configuration (the config keys that differ between runs, seed aside): how many "
        f"finished runs ended at {threshold_metric} {'≤' if 'loss' in threshold_metric else '≥'} "
        f"{threshold:g}, with a 95% Wilson interval; medians [min, max] of the final values; "
        "mean ± std for the attention statistics; knock-out = the val-loss rise when one head "
        "is zeroed (largest over heads, and how many heads cost more than "
        f"{MATTERS:g} nats); `seeds` = finished/all runs, and how the others ended.\n\n"
        f"{table}\n" + "".join(f"\n- {note}" for note in notes) + ("\n" if notes else "")
    )
    if publish:
        target = results_dir(experiment)
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("final_vs_*.png"):  # a plot against another knob is stale
            old.unlink()
        for written in (sweep_dir / "loss_curves.png", final_plot, sweep_dir / "summary.md"):
            shutil.copy2(written, target / written.name)
    return table + ("\n\n" + "\n".join(notes) if notes else "")
