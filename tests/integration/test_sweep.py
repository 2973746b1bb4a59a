"""A real multirun, then compare.py on it; and compare.py's refusals, run as a script.
(compare() on hand-made run folders, in this process: tests/unit/test_compare_summary.py.)"""

import json
import shutil

import matplotlib.image
import numpy as np
import pytest

from src.analysis.compare import compare
from src.analysis.runs import CompareError, load_runs
from src.preflight.threads import available_cpus
from tests.helpers import (
    BASE_CONFIG,
    ROOT,
    TINY,
    TRAIN_SCRIPT,
    make_run_folders,
    run_script,
    run_sweep,
)

COMPARE_SCRIPT = ROOT / "scripts" / "compare.py"


def _colours_drawn(png, n: int) -> list[bool]:
    """Whether each of the first n colours compare.py draws lines in (matplotlib's tab10,
    one per value of the legend's knob) appears in the figure: a line that went missing is
    absent."""
    image = (matplotlib.image.imread(png)[..., :3] * 255).round()  # (H, W, RGB)
    drawn = []
    for i in range(n):
        colour = np.array(matplotlib.colormaps["tab10"](i)[:3]) * 255
        drawn.append(int((np.abs(image - colour.round()) < 1).all(-1).sum()) >= 20)
    return drawn


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """2 x 2 configurations, one seed each, a few steps: one Hydra multirun, its jobs run
    two at a time by the joblib launcher."""
    out = tmp_path_factory.mktemp("sweep") / "multirun"
    proc = run_sweep(
        out,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "heads=1,2",
        "scale=true,false",
        "model.net.d_model=16",
        *TINY,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_multirun_folders_name_their_overrides(sweep_dir):
    names = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert len(names) == 4
    assert names[0].startswith("0_") and "heads=1" in names[0] and "scale=True" in names[0]
    for name in names:
        assert json.loads((sweep_dir / name / "metrics.json").read_text())["status"] == "finished"
        # two jobs at a time on this machine: each takes its share of the cores
        share = max(1, available_cpus() // 2)
        assert f"torch threads: {share}" in (sweep_dir / name / "train.log").read_text()


@pytest.mark.slow
def test_compare_writes_a_figure_and_one_row_per_configuration(sweep_dir):
    proc = run_script(COMPARE_SCRIPT, str(sweep_dir), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 4 configurations (heads x scale) fit one panel: a colour each
    assert _colours_drawn(sweep_dir / "loss_curves.png", 5) == [True] * 4 + [False]
    summary = (sweep_dir / "summary.md").read_text()
    rows = [line.split("|")[1:-1] for line in summary.splitlines() if line.startswith("| heads=")]
    # labelled by what varies across the sweep only; the shared overrides are left out
    # labelled by the config keys that differ, written as typed (true, not True)
    assert sorted(r[0].strip() for r in rows) == [
        "heads=1,scale=false",
        "heads=1,scale=true",
        "heads=2,scale=false",
        "heads=2,scale=true",
    ]
    assert all(r[-1].strip() == "1/1" for r in rows)  # seeds finished/all
    # a success count with its 95% interval, and the knock-out summary of HeadKnockout
    assert all(r[1].strip() in ("0/1 [0.00, 0.79]", "1/1 [0.21, 1.00]") for r in rows)
    assert all(r[-3].strip() != "—" for r in rows)
    assert "heads=1" in proc.stdout  # the table is printed too
    # the final-metric plot, against the knob it inferred (heads varies, so heads)
    # one line per value of the other knob, scale: two
    assert _colours_drawn(sweep_dir / "final_vs_heads.png", 3) == [True, True, False]
    assert "final_vs_heads.png" in proc.stdout


@pytest.mark.slow
def test_compare_plots_against_the_knob_named_with_x_and_refuses_one_that_does_not_vary(
    sweep_dir, tmp_path
):
    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy)
    proc = run_script(COMPARE_SCRIPT, str(copy), "--x", "scale", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (copy / "final_vs_scale.png").is_file()
    proc = run_script(COMPARE_SCRIPT, str(copy), "--x", "model.lr", timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--x model.lr does not vary" in proc.stderr and "heads, scale" in proc.stderr


@pytest.mark.slow
def test_compare_reports_an_unfinished_run_instead_of_crashing(sweep_dir, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(sweep_dir, partial)
    victim = next(p for p in sorted(partial.iterdir()) if p.is_dir())
    (victim / "metrics.json").unlink()  # as if the job had been killed
    compare(partial)
    (victim_run,) = [r for r in load_runs(partial) if r.path == victim]
    assert victim_run.status == "unfinished"
    (row,) = [
        line
        for line in (partial / "summary.md").read_text().splitlines()
        if line.startswith(f"| {victim_run.label} |")
    ]
    assert row.split("|")[-2].strip() == "0/1 (unfinished: 1)"


def test_compare_refuses_a_folder_without_runs(tmp_path):
    with pytest.raises(CompareError, match="no runs found"):
        load_runs(tmp_path)
    proc = run_script(COMPARE_SCRIPT, str(tmp_path), timeout=120)
    assert proc.returncode != 0 and "no runs found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_experiment_lists_the_available_ones(tmp_path):
    proc = run_script(TRAIN_SCRIPT, "experiment=nope", cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "Could not find 'experiment/nope'" in proc.stderr
    assert "scale_vs_heads" in proc.stderr


def test_compare_refuses_a_sweep_in_which_no_knob_varies(tmp_path):
    make_run_folders(tmp_path, [f"heads: 2\nseed: {i}\n{BASE_CONFIG}" for i in range(3)])
    with pytest.raises(CompareError, match="no knob varies"):
        compare(tmp_path)
    proc = run_script(COMPARE_SCRIPT, str(tmp_path), timeout=120)
    assert proc.returncode != 0 and "no knob varies" in proc.stderr
    assert "Traceback" not in proc.stderr
