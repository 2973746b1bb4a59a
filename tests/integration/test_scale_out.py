"""Scale-out through existing engines: Lightning DDP, Hydra's submitit launcher and Optuna
sweeper (the joblib launcher runs tests/integration/test_sweep.py's sweep), and a DDP job
stopping when one of its ranks fails."""

import json
import math
from pathlib import Path

import pytest
import yaml

from src.analysis.compare import compare
from src.analysis.runs import load_runs
from src.training.distributed import watch_ranks
from src.training.run import train
from tests.helpers import TINY, read_events, run_sweep, start_python

# DDP's train/loss averages the two half-batch losses; one process takes the full-batch mean.
# They agree to float32 rounding (measured: about 1e-6 over 6 steps).
DDP_TOLERANCE = 1e-5


def _curve(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in read_events(run_dir).Scalars(tag)]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(compose_cfg, tmp_path):
    """A two-job multirun, where Lightning's own launcher would re-run the sweep, and the
    second job must start its ranks afresh in the same launching process."""
    overrides = [*TINY, "heads=2", "trainer.log_every_n_steps=1"]
    single = train(compose_cfg(*overrides))

    sweep = tmp_path / "sweep"
    proc = run_sweep(sweep, "trainer=ddp", *overrides, "seed=1,0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (proc.stdout + proc.stderr).count("Starting with 2 processes") == 2
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())  # one folder a job: rank 1 wrote there
    assert len(jobs) == 2 and all((job / "rank1.log").is_file() for job in jobs)
    assert sorted(sweep.rglob("metrics.json")) == [job / "metrics.json" for job in jobs]
    assert not (tmp_path / "logs").exists()  # no stray run folder from the second process

    job = jobs[1]  # seed=0, as the single process
    ddp = json.loads((job / "metrics.json").read_text())
    assert ddp["status"] == "finished" and ddp["step"] == 6
    for key, value in single["metrics"].items():
        assert ddp["metrics"][key] == pytest.approx(value, abs=DDP_TOLERANCE), key
    single_curve, ddp_curve = _curve(tmp_path, "train/loss"), _curve(job, "train/loss")
    assert [s for s, _ in ddp_curve] == [s for s, _ in single_curve] == list(range(6))
    worst = max(abs(a - b) for (_, a), (_, b) in zip(single_curve, ddp_curve))
    assert worst <= DDP_TOLERANCE
    for loss in ["train/loss", "val/loss"]:  # the log10 of the loss both processes averaged
        logged = [v for _, v in _curve(job, f"{loss}_log10")]
        assert logged == pytest.approx([math.log10(v) for _, v in _curve(job, loss)], abs=1e-5)
    print(f"DDP vs one process: largest train/loss difference {worst:.2e}")


class _Finishes:
    """A `done` event for watch_ranks: this rank finishes fit after `polls` waits."""

    def __init__(self, polls: int) -> None:
        self.polls = polls

    def wait(self, timeout: float) -> bool:
        self.polls -= 1
        return self.polls < 0


def test_a_failed_rank_stops_the_job_but_a_failure_all_ranks_share_does_not():
    running = start_python("import time; time.sleep(60)")
    failed = start_python("raise SystemExit(3)")
    failed.wait()
    stopped = []
    watch_ranks([running, failed], _Finishes(polls=2), stopped.append)
    assert stopped == ["rank 2 exited with code 3"]
    assert running.wait(timeout=10) != 0  # killed: it would wait for rank 2 forever

    failed = start_python("raise SystemExit(3)")
    failed.wait()
    stopped = []  # this rank leaves fit during the grace period (a diverged run stops all)
    watch_ranks([failed], _Finishes(polls=1), stopped.append)
    assert stopped == []


@pytest.mark.slow
def test_submitit_local_sweep_runs_jobs_as_processes_and_compare_reads_it(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_sweep(
        sweep,
        "hydra/launcher=submitit_local",
        "hydra.launcher.cpus_per_task=1",  # two jobs side by side on two cores
        "heads=1,2",
        *TINY,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = load_runs(sweep)
    assert sorted(r.label for r in runs) == ["heads=1", "heads=2"]
    assert all(r.status == "finished" for r in runs)
    assert (sweep / ".submitit").is_dir()  # submitit ran them, with its own logs
    for run in runs:
        assert "torch threads: 1" in (run.path / "train.log").read_text()
    assert "heads=1" in compare(sweep).text


@pytest.mark.slow
def test_optuna_search_finishes_and_reports_the_best_trial(tmp_path):
    # the Optuna sweeper is an extra: `uv run pytest` without it skips this, CI installs it
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="uv sync --extra optuna")
    sweep = tmp_path / "sweep"
    proc = run_sweep(
        sweep, "hparams_search=lr_warmup", "hydra.sweeper.n_trials=3", *TINY, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Best parameters:" in proc.stdout and "Best value:" in proc.stdout
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    losses = [
        json.loads(p.read_text())["metrics"]["val/loss"] for p in sweep.glob("*/metrics.json")
    ]
    assert len(losses) == 3
    assert best["best_value"] == pytest.approx(min(losses))
    assert set(best["best_params"]) == {"model.lr", "model.warmup_steps"}
