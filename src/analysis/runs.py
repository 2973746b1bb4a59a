"""A sweep's runs as compare reads them: each run's status, metrics, config and curves.

A run is a folder with `.hydra/` (written by Hydra before the run starts); it counts as
finished when its `metrics.json` says so. Metrics come from `metrics.json`, curves from the
TensorBoard events through TensorBoard's own reader; a copied or resumed run's curves come
(partly) from the run its record points to (`run_curves`). A record or config that cannot be
read is named in the notes instead of stopping the comparison (`load_runs`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from src.analysis import metric_names as names
from src.runs.records import read_config, read_experiment, read_record
from src.validation import as_typed

LOSS, EXACT = names.VAL_LOSS, names.VAL_EXACT_MATCH
ENTROPY, SATURATED = names.ATTN_ENTROPY, names.ATTN_SATURATED
NOT_A_KNOB = ("seed", "ckpt_path", "paths", "hydra", "compile", "logger")  # never compared

Curve = tuple[list[int], list[float]]  # (steps, values)
Curves = dict[str, Curve]  # tag -> curve


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
    curves: Curves = field(default_factory=dict)
    knobs: dict[str, str] = field(default_factory=dict)  # the run's config, flattened
    experiment: str | None = None  # the `experiment=NAME` it was started with


def _flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{dotted.key: value as the user would type it} for every leaf of a run's config."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if not prefix and key in NOT_A_KNOB:
            continue
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = as_typed(value)
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


def read_curves(path: Path) -> Curves:
    """Every scalar compare needs (`wanted`), as (steps, values), through TensorBoard's own
    reader, under the tags runs write now (`names.current_tag`)."""
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    events = EventAccumulator(str(path), size_guidance={SCALARS: 0})  # 0: keep every point
    events.Reload()
    curves = {}
    for written in events.Tags()["scalars"]:
        tag = names.current_tag(written)  # a run saved before wrote `attn/...`, not `xray/...`
        if wanted(tag):
            points = events.Scalars(written)
            # Lightning logs the module's metrics at the finished batch counted from 0; the
            # callbacks (xray/*) at the number of optimizer steps taken. Count steps taken.
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
    """Why a folder a record points to was not followed: gone, or already on the path."""
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


def _read_configs(paths: list[Path], notes: list[str]) -> tuple[dict[Path, dict], list[str]]:
    """Each run folder's config; a damaged one is noted and its run skipped, as without its
    config a run belongs to no configuration, and perhaps not to this task."""
    configs, skipped = {}, []
    for path in paths:
        config, why = read_config(path)
        if config is None:
            skipped.append(f"damaged config: {path / '.hydra' / 'config.yaml'} ({why})")
            notes.append(f"{skipped[-1]}; run skipped")
        else:
            configs[path] = config
    return configs, skipped


def _read_run(path: Path, config: dict, label: str, knobs: dict[str, str], notes: list[str]) -> Run:
    """One run from its folder: a damaged metrics.json counts it as `damaged`, a damaged
    hydra.yaml leaves it no experiment; each gets a line in `notes`."""
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
    return Run(path, label, seed, task, status, metrics, curves, knobs, experiment)


def load_runs(sweep_dir: Path, notes: list[str] | None = None) -> list[Run]:
    """Every run below `sweep_dir`, finished or not, each folder once (the folders that a
    copied or resumed run points to are read for curves only). What cannot be read as it is
    gets one line in `notes` (`_read_configs`, `_read_run`, `run_curves`); a folder with no
    run to compare, or runs of more than one task, raises CompareError."""
    notes = [] if notes is None else notes
    paths = sorted(h.parent for h in sweep_dir.rglob(".hydra") if h.is_dir())
    configs, skipped = _read_configs(paths, notes)
    flat = [_flatten(c) for c in configs.values()]
    runs = [
        _read_run(path, config, label, knobs, notes)
        for (path, config), label, knobs in zip(configs.items(), _labels(flat), flat)
    ]
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


def experiment_name(runs: list[Run]) -> str | None:
    """The experiment every run was started with (`experiment=NAME`), or None."""
    started_with = {r.experiment for r in runs}
    return started_with.pop() if len(started_with) == 1 else None
