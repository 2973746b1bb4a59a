"""compare.py run as a script on hand-made run folders (.hydra/config.yaml, metrics.json), no
training: its refusals exit 2, damaged records do not stop it. (compare() and load_runs() on
such folders, in this process: tests/unit/test_compare_records.py.)"""

import os

import pytest

from tests.helpers import ROOT, finished_record, make_run_folder, run_script, seeds_column

COMPARE_SCRIPT = ROOT / "scripts" / "compare.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


# --- the script: refusals exit 2, damaged records do not stop it ----------------------------


@pytest.mark.parametrize("case", ["not a folder", "no runs", "no knob varies"])
def test_the_script_refuses_with_one_paragraph_and_exit_code_2(tmp_path, case):
    target = tmp_path
    if case == "not a folder":
        target = tmp_path / "nope"
    elif case == "no knob varies":
        for seed in range(2):
            make_run_folder(tmp_path, f"{seed}", heads=2, seed=seed, record=finished_record())
    proc = run_script(COMPARE_SCRIPT, str(target), cwd=ROOT, env=ENV, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "\n\n" not in proc.stderr.strip() and proc.stdout == ""


def test_the_script_compares_a_sweep_of_damaged_records_only(tmp_path):
    """Nothing finished, nothing readable: still a table (0/1 per row) and the names."""
    cut = make_run_folder(tmp_path, "0", heads=1, record='{"status": "fin')
    empty = make_run_folder(tmp_path, "1", heads=2, record="")
    proc = run_script(COMPARE_SCRIPT, str(tmp_path), cwd=ROOT, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert f"damaged record: {empty / 'metrics.json'} (empty); counted as damaged" in lines
    assert (
        f"damaged record: {cut / 'metrics.json'} (truncated JSON: Unterminated string "
        "starting at line 1 column 12); counted as damaged"
    ) in lines
    assert seeds_column(proc.stdout, "heads=1") == "0/1 (damaged: 1)"
    assert (tmp_path / "summary.md").is_file() and (tmp_path / "final_vs_heads.png").is_file()
