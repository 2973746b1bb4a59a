"""Nothing is lost when a process dies or two race: a run SIGKILLed during a save resumes
exactly with ckpt_path=last, and runs started at once get folders of their own."""

import json
import logging
import signal
import subprocess
import time
from pathlib import Path

import pytest

from src.training.checkpointing import load_checkpoint
from src.training.run import train
from tests.helpers import TINY, TRAIN_SCRIPT, start_python, start_script

STEPS_12 = ["trainer.max_steps=12", "trainer.val_check_interval=4"]


@pytest.mark.slow
def test_sigkill_during_a_save_then_ckpt_path_last_resumes_exactly(compose_cfg, tmp_path, caplog):
    """A real process is SIGKILLed while writing its second checkpoint (step 8); the first
    (step 4) still loads, and `ckpt_path=last` resumes from it to the uninterrupted result."""
    reference = train(compose_cfg(*TINY, *STEPS_12))

    logs = tmp_path / "logs"
    marker = tmp_path / "saving_step_8"
    overrides = [*TINY, *STEPS_12, f"paths.log_dir={logs}"]
    # Same script, same config; only os.replace of the second last.ckpt blocks until killed.
    hang_in_second_save = f"""
import os, runpy, sys, time
import src.training.checkpointing as ckpt
real_replace, saves = os.replace, []
def replace(src, dst):
    if str(dst).endswith("last.ckpt"):
        saves.append(dst)
        if len(saves) == 2:
            open({str(marker)!r}, "w").close()
            time.sleep(600)
    real_replace(src, dst)
ckpt.os = type(os)("os_with_hanging_replace")
ckpt.os.__dict__.update(os.__dict__, replace=replace)
sys.argv = [{str(TRAIN_SCRIPT)!r}, *{overrides!r}]
runpy.run_path({str(TRAIN_SCRIPT)!r}, run_name="__main__")
"""
    child = start_python(hang_in_second_save, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert child.poll() is None, child.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the child never reached its second save"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL

    (killed,) = (logs / "runs").iterdir()
    # written at the start and never replaced: a killed run, not one that never started
    assert json.loads((killed / "metrics.json").read_text()) == {"status": "running"}
    left = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert "last.ckpt.tmp" in left  # the save that was cut short
    assert load_checkpoint(killed / "checkpoints" / "last.ckpt")["global_step"] == 4

    resumed = tmp_path / "resumed"  # a folder of its own; in this process, to save a start-up
    cfg = compose_cfg(*overrides, "ckpt_path=last")
    cfg.paths.output_dir = str(resumed)
    with caplog.at_level(logging.INFO, logger="src"):
        train(cfg)
    assert f"resuming from {killed / 'checkpoints' / 'last.ckpt'}" in caplog.text
    result = json.loads((resumed / "metrics.json").read_text())
    assert result["status"] == "finished" and result["step"] == 12
    assert result["metrics"].keys() == reference["metrics"].keys()
    for key, value in reference["metrics"].items():
        assert result["metrics"][key] == pytest.approx(value, abs=1e-6), key
    assert load_checkpoint(killed / "checkpoints" / "last.ckpt")["global_step"] == 4  # kept


@pytest.mark.slow
def test_two_runs_in_the_same_folder_slot_get_separate_folders_and_equal_results(tmp_path):
    """Two processes at once, both asking for the same run folder (as two runs started in
    the same second do): each gets its own, and their metrics.json are byte-identical."""
    same_slot = f"hydra.run.dir=${{unique_dir:{tmp_path / 'runs' / 'same'}}}"
    procs = [
        start_script(
            TRAIN_SCRIPT,
            *TINY,
            same_slot,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert folders == ["same", "same_2"]
    texts = [(tmp_path / "runs" / f / "metrics.json").read_text() for f in folders]
    assert texts[0] == texts[1]


def test_unique_dir_gives_racing_processes_distinct_folders(tmp_path):
    wanted = str(tmp_path / "2026-01-01_00-00-00_default")
    claim = f"from src.runs.folders import unique_dir; print(unique_dir({wanted!r}))"
    racers = [  # light processes (omegaconf only), started together
        start_python(claim, stdout=subprocess.PIPE, text=True) for _ in range(6)
    ]
    claimed = sorted(racer.communicate(timeout=120)[0].strip() for racer in racers)
    assert len(set(claimed)) == 6 and all(Path(c).is_dir() for c in claimed)
    assert wanted in claimed
