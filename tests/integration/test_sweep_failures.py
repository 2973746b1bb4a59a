"""A sweep with a job that fails after its start: the sweep goes on past it, and compare
lists it."""

import json

import pytest

from tests.helpers import DIVERGING, TINY, run_sweep


@pytest.mark.slow
def test_a_sweep_goes_on_past_a_diverged_job_and_compare_lists_it(tmp_path):
    from src.analysis.compare import compare
    from src.analysis.runs import load_runs

    sweep = tmp_path / "sweep"
    proc = run_sweep(sweep, *TINY, *DIVERGING, "model.lr=100,0.003", cwd=tmp_path)
    assert proc.returncode != 0  # the sweep reports its failure...
    runs = load_runs(sweep)  # ...after running every job
    assert {r.label: r.status for r in runs} == {
        "model.lr=100": "diverged",
        "model.lr=0.003": "finished",
    }
    (diverged,) = [r for r in runs if r.status == "diverged"]
    failed_step = json.loads((diverged.path / "metrics.json").read_text())["failed_step"]
    assert f"training diverged at step {failed_step}:" in proc.stderr
    compare(sweep)
    summary = (sweep / "summary.md").read_text()
    assert "1/2 runs finished" in summary and "(diverged: 1)" in summary
