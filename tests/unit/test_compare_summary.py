"""compare() on hand-made run folders, in this process, no training: how its rows are
labelled, which knob goes on the x axis (temperature too), the success count's interval,
--publish, and its refusal of a sweep that mixes tasks. (compare.py on a real sweep, and run
as a script: tests/integration/test_sweep.py.)"""

import json

import pytest

from src.analysis.compare import compare
from src.analysis.plots import choose_x
from src.analysis.runs import CompareError, load_runs
from src.analysis.summary import wilson_interval
from tests.helpers import BASE_CONFIG, finished_record, make_run_folder, make_run_folders


def test_compare_refuses_mixed_tasks(tmp_path):
    for i, task in enumerate(["src.data.tasks.Sort", "src.data.tasks.Copy"]):
        config = f"task:\n  _target_: {task}\n"
        make_run_folder(tmp_path, f"{i}_run", config=config, overrides=[f"seed={i}"])
    with pytest.raises(CompareError, match=r"mix tasks \(Copy: 1 runs, Sort: 1 runs\)"):
        load_runs(tmp_path)


def test_rows_are_labelled_by_the_config_keys_that_differ_only(tmp_path):
    """Single runs made with different overrides (logs/runs) are named by what differs."""
    make_run_folders(
        tmp_path,
        [
            f"heads: 2\nseed: 0\n{BASE_CONFIG}",
            f"heads: 4\nseed: 1\n{BASE_CONFIG}".replace("lr: 0.003", "lr: 0.01"),
            f"heads: 4\nseed: 2\n{BASE_CONFIG}",
        ],
    )
    labels = [r.label for r in load_runs(tmp_path)]
    assert labels == ["heads=2,model.lr=0.003", "heads=4,model.lr=0.01", "heads=4,model.lr=0.003"]
    assert choose_x(load_runs(tmp_path)) == "heads"


def test_the_logger_is_not_a_knob(tmp_path):
    """Where runs are logged, and by which logger class, does not change what they learn: a
    sweep whose logger setting differs between jobs is still one row per heads value."""
    logger = "logger:\n  tensorboard:\n    _target_: {}\n"
    make_run_folders(
        tmp_path,
        [
            f"heads: 2\nseed: 0\n{BASE_CONFIG}{logger.format('a.Logger')}",
            f"heads: 2\nseed: 1\n{BASE_CONFIG}{logger.format('b.Logger')}",
            f"heads: 4\nseed: 0\n{BASE_CONFIG}{logger.format('b.Logger')}",
        ],
    )
    assert [r.label for r in load_runs(tmp_path)] == ["heads=2", "heads=2", "heads=4"]


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    # Wilson (1927) score intervals at z = 1.96, as statsmodels' proportion_confint gives them
    [(0, 8, 0.0, 0.3244), (8, 8, 0.6756, 1.0), (4, 8, 0.2152, 0.7848), (1, 1, 0.2065, 1.0)],
)
def test_wilson_interval_matches_the_published_formula(successes, n, low, high):
    got = wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_always_holds_the_observed_rate():
    """At 0/n and n/n rounding once put the bound a hair past the rate (6/6: upper bound
    below 1.0), and matplotlib refused the negative error bar: compare crashed drawing it."""
    for n in range(1, 200):
        for successes in range(n + 1):
            low, high = wilson_interval(successes, n)
            assert 0.0 <= low <= successes / n <= high <= 1.0, (successes, n, low, high)


def test_temperature_is_plotted_as_one_over_scale(tmp_path):
    """The tutorial's T = 1/scale as a knob compare.py can put on the x axis."""
    import json

    scales = ["0.0625", "0.25", "1.0", "4.0"]
    make_run_folders(tmp_path, [f"heads: 4\nscale: {s}\nseed: 0\n{BASE_CONFIG}" for s in scales])
    for i, run in enumerate(sorted(tmp_path.iterdir())):
        metrics = {"val/loss": 0.1 * (i + 1), "val/exact_match": 1.0 - 0.2 * i}
        (run / "metrics.json").write_text(json.dumps({"status": "finished", "metrics": metrics}))
    runs = load_runs(tmp_path)
    assert choose_x(runs) == "scale" and choose_x(runs, "temperature") == "temperature"
    compare(tmp_path, x="temperature")
    assert (tmp_path / "final_vs_temperature.png").is_file()
    (tmp_path / "0_run" / ".hydra" / "config.yaml").write_text(
        f"heads: 4\nscale: true\nseed: 0\n{BASE_CONFIG}"
    )
    with pytest.raises(CompareError, match="needs scale to be a positive number"):
        choose_x(load_runs(tmp_path), "temperature")


def _write_finished(run, loss: float) -> None:
    """A finished record with its val/loss `loss` (and val/exact_match 1 - loss) in `run`."""
    metrics = {"val/loss": loss, "val/exact_match": 1.0 - loss}
    (run / "metrics.json").write_text(json.dumps({"status": "finished", "metrics": metrics}))


def test_publish_files_an_experiments_results_under_its_name_and_nothing_else(
    tmp_path, monkeypatch
):
    """compare.py --publish: scripts/results/NAME/ for a sweep of experiment=NAME (read from
    the runs' .hydra/hydra.yaml), replacing a plot against another knob; refused otherwise."""
    monkeypatch.setattr("src.runs.folders.RESULTS_DIR", tmp_path / "results")
    sweep = tmp_path / "sweep"
    make_run_folders(sweep, [f"heads: {h}\nseed: 0\n{BASE_CONFIG}" for h in (1, 2)])
    for i, run in enumerate(sorted(sweep.iterdir())):
        _write_finished(run, 0.1 * (i + 1))
    with pytest.raises(CompareError, match="--publish .* experiment=NAME"):
        compare(sweep, publish=True)  # no experiment recorded: nowhere to file it
    for run in sweep.iterdir():
        (run / ".hydra" / "hydra.yaml").write_text(
            "hydra:\n  runtime:\n    choices:\n      experiment: heads_phase\n"
        )
    target = tmp_path / "results" / "heads_phase"
    target.mkdir(parents=True)
    (target / "final_vs_seed.png").write_text("stale")
    (target / "README.md").write_text("the write-up\n")  # never overwritten by a publish
    result = compare(sweep, publish=True)
    assert result.published == target
    assert [p.name for p in result.written] == [
        "loss_curves.png",
        "final_vs_heads.png",
        "summary.md",
    ]
    assert sorted(p.name for p in target.iterdir()) == [
        "README.md",
        "final_vs_heads.png",
        "loss_curves.png",
        "summary.md",
    ]
    assert (target / "README.md").read_text() == "the write-up\n"
    assert (target / "summary.md").read_text() == (sweep / "summary.md").read_text()
    assert (target / "summary.md").read_text().startswith("# heads_phase: Sort, 2/2 runs")


def test_knockout_counts_are_per_layer(tmp_path):
    """A head matters when knocking it out raises the val loss by more than 0.1: counted in
    each layer, out of that layer's heads, not summed over the layers."""
    from src.analysis import metric_names as names
    from src.analysis.summary import summarise

    rises = {  # heads -> (layer, head) -> the val-loss rise with that head knocked out
        1: {(0, 0): 0.5, (1, 0): 0.7},
        2: {(0, 0): 0.5, (0, 1): 0.01, (1, 0): 0.02, (1, 1): 0.3},
    }
    for heads, rise in rises.items():
        curves = {names.knockout_tag(*key): [(60, value)] for key, value in rise.items()}
        curves[names.VAL_LOSS] = [(60, 0.1)]
        config = f"heads: {heads}\nseed: 0\n{BASE_CONFIG}"
        make_run_folder(
            tmp_path, f"{heads}_run", config=config, record=finished_record(), curves=curves
        )
    rows = summarise(load_runs(tmp_path))
    (column,) = [key for key in rows[0] if "knock-out costs" in key]
    assert "per layer" in column
    assert [row[column] for row in rows] == ["1; 1 of 1", "1; 1 of 2"]
