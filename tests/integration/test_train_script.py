"""scripts/train.py as the user types it, in a fresh process: a run's folder, what it logs,
--help, a refusal, and the threads it uses (the same in process: tests/unit/)."""

import contextlib
import json
import math
import os
import re
import time
from pathlib import Path

import pytest

from src.preflight.threads import IDLE_SHARE
from tests.helpers import (
    SCALARS,
    TINY,
    TRAIN_SCRIPT,
    assert_refused_before_training,
    read_events,
    run_script,
)


@pytest.mark.slow
def test_exact_user_command_trains_and_logs(tmp_path):
    """`python scripts/train.py heads=2 scale=false`, run from a fresh folder."""
    proc = run_script(TRAIN_SCRIPT, "heads=2", "scale=false", *TINY, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "runs").iterdir()
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert written and all(run_dir in p.parents for p in written)  # all of it in the run's folder
    assert "heads=2,scale=false" in run_dir.name  # the folder (and TensorBoard run) says so
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == 6
    assert set(SCALARS) <= set(read_events(run_dir).Tags()["scalars"])
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert "expected  ->  predicted" in proc.stdout  # sample predictions are shown


def test_help_explains_the_knobs_and_groups():
    proc = run_script(TRAIN_SCRIPT, "--help", timeout=120)
    assert proc.returncode == 0
    for words in [
        "heads=4",
        "scale=true",
        "1/sqrt(d_k)",
        "seed=0",
        "task: assoc_recall, copy",
        "trainer.max_steps",
        "tensorboard --logdir logs",
    ]:
        assert words in proc.stdout, words


@pytest.mark.slow
def test_bad_input_in_a_real_process(tmp_path):
    proc = run_script(TRAIN_SCRIPT, "heads=3", cwd=tmp_path, timeout=120)
    assert_refused_before_training(
        proc.returncode, proc.stderr, "heads=3 does not divide model.net.d_model=64", tmp_path
    )
    assert proc.returncode == 2


POLICY_LINE = re.compile(
    r"torch threads: (\d+) \(the policy: \1, as ([\d.]+) of (\d+) cores were idle at start"
)


@pytest.mark.slow
def test_a_run_takes_the_idle_cores_and_says_so_first_in_train_log(tmp_path: Path):
    """In a fresh process, as typed, nothing exported: the threads in use head train.log,
    and they are the cores that were idle while it started; beside one busy process (as a
    second run or a browser tab), one core fewer."""
    from src.bench.measure import busy_process

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    chosen = {}
    for load in ("idle", "busy"):
        folder = tmp_path / load
        folder.mkdir()
        with busy_process(120) if load == "busy" else contextlib.nullcontext():
            if load == "busy":
                time.sleep(1.0)  # its interpreter starts, then spins
            proc = run_script(TRAIN_SCRIPT, *TINY, "trainer.max_steps=2", cwd=folder, env=env)
        assert proc.returncode == 0, proc.stderr
        (log_file,) = folder.glob("logs/runs/*/train.log")
        first = log_file.read_text().splitlines()[0]
        found = POLICY_LINE.search(first)
        assert found, first
        threads, idle, cpus = int(found[1]), float(found[2]), int(found[3])
        assert threads == max(1, min(cpus, math.floor(idle + 1 - IDLE_SHARE)))
        chosen[load] = threads, idle
    if len(os.sched_getaffinity(0)) >= 2:
        assert chosen["busy"][1] < chosen["idle"][1] - 0.5, chosen  # the spin took a core
        assert chosen["busy"][0] < len(os.sched_getaffinity(0)), chosen
