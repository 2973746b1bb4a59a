"""Compare a sweep: its table and figures written next to its runs, and, for an
experiment's sweep, filed under the experiment's results (`publish`).

The parts live by concern: reading the runs (`runs`), the table (`summary`), the figures
(`plots`); this module only puts them together into the files a sweep is read from.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from src.analysis.plots import choose_x, curves_figure, final_vs_knob_figure, save
from src.analysis.runs import EXACT, CompareError, experiment_name, load_runs, status_counts
from src.analysis.summary import how_to_read, markdown_table, summarise
from src.runs.folders import results_dir


@dataclass(frozen=True)
class Compared:
    """What `compare` made: the table, then a line for each record that could not be read as
    it is (load_runs, run_curves); the files it wrote; where it filed them (publish)."""

    text: str
    written: tuple[Path, ...]
    published: Path | None = None


def compare(
    sweep_dir: Path,
    threshold_metric: str = EXACT,
    threshold: float = 0.9,
    x: str | None = None,
    publish: bool = False,
) -> Compared:
    """Write loss_curves.png, final_vs_<knob>.png and summary.md into `sweep_dir`, and say
    what was written (summary.md keeps the unreadable-record lines too). `publish`: copy them
    to the experiment's results folder too (`results_dir`). What cannot be compared raises
    CompareError before anything is written."""
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
    table = markdown_table(summarise(runs, threshold_metric, threshold))
    task = runs[0].task
    curves_plot, final_plot = sweep_dir / "loss_curves.png", sweep_dir / f"final_vs_{knob}.png"
    save(curves_figure(runs, knob, f"{task} ({len(runs)} runs)"), curves_plot)
    save(final_vs_knob_figure(runs, knob, task, threshold_metric, threshold), final_plot)
    finished = sum(r.status == "finished" for r in runs)
    summary = sweep_dir / "summary.md"
    summary.write_text(
        f"# {experiment or sweep_dir.name}: {task}, {finished}/{len(runs)} runs finished"
        f"{status_counts(runs)}\n\n{how_to_read(threshold_metric, threshold)}\n\n"
        f"{table}\n" + "".join(f"\n- {note}" for note in notes) + ("\n" if notes else "")
    )
    written = (curves_plot, final_plot, summary)
    target = None
    if publish:
        target = results_dir(experiment)
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("final_vs_*.png"):  # a plot against another knob is stale
            old.unlink()
        for file in written:
            shutil.copy2(file, target / file.name)
    text = table + ("\n\n" + "\n".join(notes) if notes else "")
    return Compared(text, written, target)
