"""A real multirun, then compare.py on it; and compare.py's refusals."""

import json
import shutil

import matplotlib.image
import numpy as np
import pytest

from src.analysis.compare import compare
from src.analysis.plots import choose_x
from src.analysis.runs import CompareError, load_runs
from src.analysis.summary import wilson_interval
from src.preflight.threads import available_cpus
from tests.helpers import ROOT, TINY, TRAIN_SCRIPT, run_script, run_sweep

COMPARE_SCRIPT = ROOT / "scripts" / "compare.py"


def _colours_drawn(png, n: int) -> list[bool]:
    """Whether each of the first n colours compare.py draws lines in (matplotlib's tab10,
    one per configuration) appears in the figure: a line that went missing is absent."""
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
    assert _colours_drawn(sweep_dir / "loss_curves.png", 5) == [True] * 4 + [False]  # 4 configs
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


def test_compare_refuses_mixed_tasks(tmp_path):
    for i, task in enumerate(["src.data.tasks.Sort", "src.data.tasks.Copy"]):
        hydra_dir = tmp_path / f"{i}_run" / ".hydra"
        hydra_dir.mkdir(parents=True)
        (hydra_dir / "overrides.yaml").write_text(f"- seed={i}\n")
        (hydra_dir / "config.yaml").write_text(f"task:\n  _target_: {task}\n")
    with pytest.raises(CompareError, match=r"mix tasks \(Copy: 1 runs, Sort: 1 runs\)"):
        load_runs(tmp_path)


def test_unknown_experiment_lists_the_available_ones(tmp_path):
    proc = run_script(TRAIN_SCRIPT, "experiment=nope", cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "Could not find 'experiment/nope'" in proc.stderr
    assert "scale_vs_heads" in proc.stderr


def _fake_runs(root, configs):
    for i, config in enumerate(configs):
        hydra_dir = root / f"{i}_run" / ".hydra"
        hydra_dir.mkdir(parents=True)
        (hydra_dir / "config.yaml").write_text(config)


BASE = "task:\n  _target_: src.data.tasks.Sort\nmodel:\n  lr: 0.003\n  net:\n    d_model: 64\n"


def test_rows_are_labelled_by_the_config_keys_that_differ_only(tmp_path):
    """Single runs made with different overrides (logs/runs) are named by what differs."""
    _fake_runs(
        tmp_path,
        [
            f"heads: 2\nseed: 0\n{BASE}",
            f"heads: 4\nseed: 1\n{BASE}".replace("lr: 0.003", "lr: 0.01"),
            f"heads: 4\nseed: 2\n{BASE}",
        ],
    )
    labels = [r.label for r in load_runs(tmp_path)]
    assert labels == ["heads=2,model.lr=0.003", "heads=4,model.lr=0.01", "heads=4,model.lr=0.003"]
    assert choose_x(load_runs(tmp_path)) == "heads"


def test_compare_refuses_a_sweep_in_which_no_knob_varies(tmp_path):
    _fake_runs(tmp_path, [f"heads: 2\nseed: {i}\n{BASE}" for i in range(3)])
    with pytest.raises(CompareError, match="no knob varies"):
        compare(tmp_path)
    proc = run_script(COMPARE_SCRIPT, str(tmp_path), timeout=120)
    assert proc.returncode != 0 and "no knob varies" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    # Wilson (1927) score intervals at z = 1.96, as statsmodels' proportion_confint gives them
    [(0, 8, 0.0, 0.3244), (8, 8, 0.6756, 1.0), (4, 8, 0.2152, 0.7848), (1, 1, 0.2065, 1.0)],
)
def test_wilson_interval_matches_the_published_formula(successes, n, low, high):
    got = wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_temperature_is_plotted_as_one_over_scale(tmp_path):
    """The tutorial's T = 1/scale as a knob compare.py can put on the x axis."""
    import json

    scales = ["0.0625", "0.25", "1.0", "4.0"]
    _fake_runs(tmp_path, [f"heads: 4\nscale: {s}\nseed: 0\n{BASE}" for s in scales])
    for i, run in enumerate(sorted(tmp_path.iterdir())):
        metrics = {"val/loss": 0.1 * (i + 1), "val/exact_match": 1.0 - 0.2 * i}
        (run / "metrics.json").write_text(json.dumps({"status": "finished", "metrics": metrics}))
    runs = load_runs(tmp_path)
    assert choose_x(runs) == "scale" and choose_x(runs, "temperature") == "temperature"
    compare(tmp_path, x="temperature")
    assert (tmp_path / "final_vs_temperature.png").is_file()
    (tmp_path / "0_run" / ".hydra" / "config.yaml").write_text(
        f"heads: 4\nscale: true\nseed: 0\n{BASE}"
    )
    with pytest.raises(CompareError, match="needs scale to be a positive number"):
        choose_x(load_runs(tmp_path), "temperature")


def _finished(run, loss: float) -> None:
    metrics = {"val/loss": loss, "val/exact_match": 1.0 - loss}
    (run / "metrics.json").write_text(json.dumps({"status": "finished", "metrics": metrics}))


def test_publish_files_an_experiments_results_under_its_name_and_nothing_else(
    tmp_path, monkeypatch
):
    """compare.py --publish: scripts/results/NAME/ for a sweep of experiment=NAME (read from
    the runs' .hydra/hydra.yaml), replacing a plot against another knob; refused otherwise."""
    monkeypatch.setattr("src.runs.folders.RESULTS_DIR", tmp_path / "results")
    sweep = tmp_path / "sweep"
    _fake_runs(sweep, [f"heads: {h}\nseed: 0\n{BASE}" for h in (1, 2)])
    for i, run in enumerate(sorted(sweep.iterdir())):
        _finished(run, 0.1 * (i + 1))
    with pytest.raises(CompareError, match="--publish .* experiment=NAME"):
        compare(sweep, publish=True)  # no experiment recorded: nowhere to file it
    for run in sweep.iterdir():
        (run / ".hydra" / "hydra.yaml").write_text(
            "hydra:\n  runtime:\n    choices:\n      experiment: heads_phase\n"
        )
    target = tmp_path / "results" / "heads_phase"
    target.mkdir(parents=True)
    (target / "final_vs_seed.png").write_text("stale")
    compare(sweep, publish=True)
    assert sorted(p.name for p in target.iterdir()) == [
        "final_vs_heads.png",
        "loss_curves.png",
        "summary.md",
    ]
    assert (target / "summary.md").read_text() == (sweep / "summary.md").read_text()
    assert (target / "summary.md").read_text().startswith("# heads_phase: Sort, 2/2 runs")
