"""Read a sweep's runs and summarise them: curves per configuration, mean over seeds.

A run is a folder with `.hydra/` (written by Hydra before the run starts); it counts as
finished when its `metrics.json` says so. Metrics come from `metrics.json`, curves from the
TensorBoard events through TensorBoard's own reader.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

LOSS, EXACT = "val/loss", "val/exact_match"
ENTROPY, SATURATED = "attn/entropy", "attn/saturated_frac"
EARLY_STEPS = 100  # "early on": gradient norms are averaged over the first steps


class CompareError(ValueError):
    """The folder cannot be compared; the message says why."""


@dataclass
class Run:
    path: Path
    label: str  # the configuration: the run's overrides without the seed
    seed: str
    task: str
    # finished | diverged | refused (a bad value) | running (still, or killed: metrics.json
    # is written at the start) | unfinished (no metrics.json: never started)
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)


IGNORED_KEYS = ("seed", "experiment", "hydra.run.dir", "hydra.sweep.dir", "ckpt_path")


def _overrides(path: Path) -> dict[str, str]:
    """A run's overrides from Hydra's .hydra/overrides.yaml, as {key: value}."""
    items = yaml.safe_load((path / ".hydra" / "overrides.yaml").read_text()) or []
    return dict(item.split("=", 1) for item in items if "=" in item)


def _labels(overrides: list[dict[str, str]]) -> list[str]:
    """Name each run by the overrides that vary across the sweep, seed aside."""
    keys = {k for o in overrides for k in o if k not in IGNORED_KEYS}
    varying = sorted(k for k in keys if len({o.get(k) for o in overrides}) > 1)
    return [",".join(f"{k}={o.get(k, '-')}" for k in varying) or "all runs" for o in overrides]


def read_curves(path: Path) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar compare needs, as (steps, values), through TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    events = EventAccumulator(str(path), size_guidance={SCALARS: 0})  # 0: keep every point
    events.Reload()
    curves = {}
    for tag in events.Tags()["scalars"]:
        if tag in (LOSS, EXACT, ENTROPY, SATURATED) or tag.endswith(("/query", "/key")):
            points = events.Scalars(tag)
            # Lightning logs its own metrics at the finished batch counted from 0; ours
            # (attn/*, grad/*) at the number of optimizer steps taken. Count steps taken.
            shift = 1 if tag.startswith(("train/", "val/")) else 0
            curves[tag] = ([p.step + shift for p in points], [p.value for p in points])
    return curves


def early_qk_grad(run: Run) -> float | None:
    """Mean |grad| of W_q and W_k over all layers during the first EARLY_STEPS steps."""
    values = [
        v
        for tag, (steps, vals) in run.curves.items()
        if tag.startswith("grad/")
        for s, v in zip(steps, vals)
        if s <= EARLY_STEPS
    ]
    return statistics.mean(values) if values else None


def load_runs(sweep_dir: Path) -> list[Run]:
    """Every run below `sweep_dir`, finished or not."""
    paths = sorted(h.parent for h in sweep_dir.rglob(".hydra") if h.is_dir())
    overrides = [_overrides(p) for p in paths]
    runs = []
    for path, label, override in zip(paths, _labels(overrides), overrides):
        config = yaml.safe_load((path / ".hydra" / "config.yaml").read_text()) or {}
        task = str(config.get("task", {}).get("_target_", "?")).rsplit(".", 1)[-1]
        status, metrics = "unfinished", {}
        if (path / "metrics.json").is_file():
            saved = json.loads((path / "metrics.json").read_text())
            status, metrics = saved.get("status", "finished"), saved.get("metrics", {})
        curves = read_curves(path)
        runs.append(Run(path, label, override.get("seed", "0"), task, status, metrics, curves))
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


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}"


def _finals(runs: list[Run], tag: str) -> list[float]:
    return [r.curves[tag][1][-1] for r in runs if tag in r.curves]


def summarise(
    runs: list[Run], threshold_metric: str = EXACT, threshold: float = 0.9
) -> list[dict[str, str]]:
    """One row per configuration."""
    below = "loss" in threshold_metric
    rows = []
    for label in sorted({r.label for r in runs}, key=_natural_key):
        group = [r for r in runs if r.label == label]
        done = [r for r in group if r.status == "finished"]
        reached = [steps_to_reach(r.curves.get(threshold_metric), threshold, below) for r in done]
        hit = [s for s in reached if s is not None]
        other = sorted({r.status for r in group if r.status != "finished"})
        rows.append(
            {
                "configuration": label,
                "val loss": _mean_std([r.metrics[LOSS] for r in done if LOSS in r.metrics]),
                "exact match": _mean_std([r.metrics[EXACT] for r in done if EXACT in r.metrics]),
                f"steps to {threshold_metric} {'≤' if below else '≥'} {threshold:g}": (
                    f"{statistics.mean(hit):.0f} ({len(hit)}/{len(done)})"
                    if hit
                    else f"— (0/{len(done)})"
                ),
                "attn entropy": _mean_std(_finals(done, ENTROPY)),
                "saturated rows": _mean_std(_finals(done, SATURATED)),
                f"W_q,W_k grad, steps ≤{EARLY_STEPS}": _mean_std(
                    [g for g in map(early_qk_grad, done) if g is not None]
                ),
                "seeds": f"{len(done)}/{len(group)}"
                + (f" ({', '.join(other)}: {len(group) - len(done)})" if other else ""),
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


def plot(runs: list[Run], out_file: Path, title: str) -> None:
    """Val loss and attention entropy against step: mean over seeds, band = min..max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (ax_loss, ax_entropy) = plt.subplots(1, 2, figsize=(13, 5))
    labels = sorted({r.label for r in runs}, key=_natural_key)
    colors = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    for i, label in enumerate(labels):
        group = [r for r in runs if r.label == label and r.status == "finished"]
        for ax, tag in ((ax_loss, LOSS), (ax_entropy, ENTROPY)):
            curves = [r.curves[tag] for r in group if tag in r.curves and r.curves[tag][0]]
            if not curves:
                continue
            steps, mean, low, high = _mean_curve(curves)
            ax.plot(steps, mean, color=colors(i), label=f"{label} (n={len(curves)})")
            ax.fill_between(steps, low, high, color=colors(i), alpha=0.2, linewidth=0)
    ax_loss.set(xlabel="step", ylabel="val loss", yscale="log", title="validation loss")
    ax_entropy.set(
        xlabel="step",
        ylabel="normalised entropy",
        ylim=(0, 1.02),
        title="attention entropy (1 = uniform over visible keys)",
    )
    ax_loss.legend(fontsize=8)
    for ax in (ax_loss, ax_entropy):
        ax.grid(alpha=0.3)
    figure.suptitle(f"{title}: mean over seeds, band = min..max across seeds")
    figure.tight_layout()
    figure.savefig(out_file, dpi=110)
    plt.close(figure)


def compare(sweep_dir: Path, threshold_metric: str = EXACT, threshold: float = 0.9) -> str:
    """Write loss_curves.png and summary.md into `sweep_dir`; return the table."""
    runs = load_runs(sweep_dir)
    rows = summarise(runs, threshold_metric, threshold)
    table = markdown_table(rows)
    task = runs[0].task
    plot(runs, sweep_dir / "loss_curves.png", f"{task} ({len(runs)} runs)")
    finished = sum(r.status == "finished" for r in runs)
    (sweep_dir / "summary.md").write_text(
        f"# {sweep_dir.name}: {task}, {finished}/{len(runs)} runs finished\n\n"
        f"Mean ± std over seeds of the final values; `seeds` = finished/all runs.\n\n{table}\n"
    )
    return table
