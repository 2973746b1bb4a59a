"""The fault-injection soak (tests/integration/soak.py), under its own marker: CI runs it after the
suite (`pytest -m soak`); a plain `pytest` leaves it out (it takes several minutes)."""

import os

import pytest

from tests.integration import soak


@pytest.mark.soak
def test_an_interrupted_sweep_ends_as_an_uninterrupted_one(tmp_path):
    summary = soak.main(seed=0, workdir=tmp_path)
    print(summary)
    assert summary["jobs"] == 12 and summary["running_in_last_folder"] == 0
    assert summary["kills"] >= 3 and summary["resumes_from_a_checkpoint"] >= 1
    assert summary["largest_metric_difference"] <= soak.TOLERANCE
    if os.geteuid() == 0 and summary["disk_full_failures"] == 0:  # root can mount a tmpfs
        pytest.fail(f"the disk-full event did not happen: {summary['notes']}")
