"""compare.py's reading of run folders: every run is listed with its status (the rest of
compare's tests: test_compare_records.py and test_compare_summary.py here, and
tests/integration/test_compare_records.py and test_sweep.py)."""

from tests.helpers import make_run_folder


def test_compare_lists_refused_and_running_runs(tmp_path):
    """A refused run's folder and a killed one's ("running" since its start) are listed."""
    from src.analysis.runs import load_runs

    for name, record in [
        ("0_seed=0", {"status": "finished", "step": 6, "metrics": {"val/loss": 1.0}}),
        ("1_seed=-1", {"status": "refused", "error": "seed=-1 is not allowed"}),
        ("2_seed=2", {"status": "running"}),
    ]:
        seed = name.split("=", 1)[1]
        config = f"seed: {seed}\ntask:\n  _target_: src.data.tasks.Sort\n"
        overrides = [name.split("_", 1)[1]]
        make_run_folder(tmp_path, name, record=record, config=config, overrides=overrides)
    assert [(r.seed, r.status) for r in load_runs(tmp_path)] == [
        ("0", "finished"),
        ("-1", "refused"),
        ("2", "running"),
    ]
