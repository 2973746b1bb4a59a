"""The recovery paths as a user types them: progress bar on (the default), the default log
folders under the working directory, and folder names as the project makes them (with `=`
and `,`). No test here turns the bar off or chooses the run folder for the project."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import TRAIN_SCRIPT, run_script, snapshot, start_script

SHORT = ["trainer.max_steps=20", "trainer.val_check_interval=10", "data.val_size=64"]
EXIT_REFUSED, EXIT_FAILED = 2, 4


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def train(cwd: Path, *args: str, timeout: int = 300, **popen) -> subprocess.CompletedProcess:
    """`python scripts/train.py ARGS` from `cwd`, as typed in a shell (one thread)."""
    return run_script(TRAIN_SCRIPT, *args, cwd=cwd, timeout=timeout, env=ONE_THREAD, **popen)


def start_train(cwd: Path, *args: str) -> subprocess.Popen:
    """The same, left running: the test kills it."""
    return start_script(
        TRAIN_SCRIPT,
        *args,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ONE_THREAD,
    )


def only_run(cwd: Path) -> Path:
    (run,) = (cwd / "logs" / "runs").iterdir()
    return run


def record(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def assert_one_paragraph(stderr: str, starts: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    assert f"error: {starts}" in stderr, stderr[-3000:]


@pytest.mark.slow
def test_sigkill_then_ckpt_path_last_resumes_with_the_progress_bar_on(tmp_path):
    """The README's headline recovery: kill a run, then the same command with ckpt_path=last.
    Lightning restarts mid-epoch without on_train_epoch_start; the step bar must cope."""
    command = ["heads=2", "scale=false", "trainer.max_steps=200", "trainer.val_check_interval=20"]
    proc = start_train(tmp_path, *command)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob("logs/runs/*/*/last.ckpt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = only_run(tmp_path)
    assert record(killed)["status"] == "running"

    resumed = train(tmp_path, *command, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (new,) = [r for r in (tmp_path / "logs" / "runs").iterdir() if r != killed]
    assert record(new)["status"] == "finished" and record(new)["step"] == 200
    assert "step" in resumed.stdout and "200/200" in resumed.stdout  # the bar was drawn


@pytest.mark.slow
def test_a_finished_run_is_extended_through_its_own_folder_name_as_typed(tmp_path):
    """`ckpt_path=logs/runs/<time>_heads=2,.../checkpoints/last.ckpt` parses as a path."""
    first = train(tmp_path, "heads=2", *SHORT)
    assert first.returncode == 0, first.stderr[-3000:]
    run = only_run(tmp_path)
    assert "=" in run.name and "," in run.name
    checkpoint = run.relative_to(tmp_path) / "checkpoints" / "last.ckpt"

    longer = [a.replace("max_steps=20", "max_steps=40") for a in SHORT]
    extended = train(tmp_path, "heads=2", *longer, f"ckpt_path={checkpoint}")
    assert extended.returncode == 0, extended.stderr[-3000:]
    (new,) = [r for r in (tmp_path / "logs" / "runs").iterdir() if r != run]
    assert record(new)["step"] == 40 and record(new)["status"] == "finished"
    assert "40/40" in extended.stdout  # the bar continued from step 20


@pytest.mark.slow
def test_an_existing_run_folder_is_never_written_into(tmp_path):
    first = train(tmp_path, "heads=2", *SHORT)
    assert first.returncode == 0, first.stderr[-3000:]
    run = only_run(tmp_path)
    before = snapshot(run)

    again = train(tmp_path, *SHORT, f"hydra.run.dir={run.relative_to(tmp_path)}")
    assert again.returncode == EXIT_REFUSED, again.stderr[-3000:]
    assert_one_paragraph(again.stderr, "hydra.run.dir=")
    assert "already holds a run" in again.stderr
    assert snapshot(run) == before  # nothing rewritten, appended or added


@pytest.mark.slow
def test_a_failure_after_the_start_is_recorded_as_failed_not_killed(tmp_path):
    """A file-size limit (EFBIG at the first checkpoint) stands for any error during fit."""
    limit = 400_000  # bytes: the config and events fit, a checkpoint (~1.2 MB) does not

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    failed = train(tmp_path, *SHORT, preexec_fn=small_files)
    assert failed.returncode == EXIT_FAILED, failed.stderr[-3000:]
    assert_one_paragraph(failed.stderr, "training failed at step")
    saved = record(only_run(tmp_path))
    assert saved["status"] == "failed"
    assert "writing the checkpoint" in saved["error"] and "checkpoints/" in saved["error"]
    assert saved["last_checkpoint"] is None  # none was written whole


@pytest.mark.parametrize(
    "override",
    [
        "trainer.val_check_interval=0",
        "trainer.log_every_n_steps=0",
        "+trainer.accumulate_grad_batches=0",
        "callbacks.attention_diagnostics.every_n_steps=0",
    ],
)
def test_values_that_would_break_training_later_are_refused_before_it_starts(tmp_path, override):
    refused = train(tmp_path, *SHORT, override, timeout=120)
    assert refused.returncode == EXIT_REFUSED, refused.stderr[-3000:]
    key = override.split("=")[0].lstrip("+")
    assert_one_paragraph(refused.stderr, f"{key}=0")
    assert record(only_run(tmp_path))["status"] == "refused"


@pytest.mark.slow
def test_a_sweep_with_a_refused_job_ends_with_one_summary_line(tmp_path):
    sweep = train(tmp_path, "-m", "heads=3,2", *SHORT)
    assert sweep.returncode == EXIT_REFUSED, sweep.stderr[-3000:]
    assert "Traceback" not in sweep.stderr, sweep.stderr[-3000:]
    (folder,) = (tmp_path / "logs" / "multiruns").iterdir()
    jobs = {record(job)["status"]: job.name for job in folder.iterdir() if job.is_dir()}
    assert sorted(jobs) == ["finished", "refused"] and "heads=3" in jobs["refused"]
    assert f"error: 1 of 2 jobs refused: {jobs['refused']}." in sweep.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs: room for two checkpoints of the default model (~1.2 MB each), not
    three, so the first save past that fills the disk."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the disk-full path is untested")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_a_full_disk_names_the_path_the_free_space_and_the_intact_checkpoint(tmp_path, small_disk):
    steps = ["trainer.max_steps=60", "trainer.val_check_interval=10", "data.val_size=64"]
    full = train(tmp_path, *steps, f"hydra.run.dir={small_disk / 'run'}")
    assert full.returncode == EXIT_FAILED, full.stderr[-3000:]
    assert_one_paragraph(full.stderr, "training failed at step")
    saved = record(small_disk / "run")
    assert saved["status"] == "failed"
    assert "the disk is full" in saved["error"] and "bytes free on" in saved["error"]
    assert str(small_disk) in saved["error"]
    assert saved["error"] in full.stderr.replace("\n", " ") or saved["error"][:60] in full.stderr
    # the checkpoint it names as intact loads, and no partial file is left behind
    from src.training.checkpointing import load_checkpoint

    assert saved["last_checkpoint"] is not None
    assert load_checkpoint(saved["last_checkpoint"])["global_step"] < saved["step"] + 1
    assert not list((small_disk / "run").rglob("*.tmp"))


def sweep_jobs(sweep: Path) -> dict[str, dict]:
    """{job folder name without its number: its record} for every job of a sweep folder."""
    return {
        job.name.split("_", 1)[1]: record(job)
        for job in sweep.iterdir()
        if (job / ".hydra").is_dir()
    }


@pytest.mark.slow
def test_an_interrupted_sweep_is_finished_by_the_same_command_with_ckpt_path_last(tmp_path):
    """Job 0 finished, job 1 killed after its first checkpoint, jobs 2 and 3 never started;
    the same `-m` command with ckpt_path=last copies 0, resumes 1, starts 2 and 3, and every
    job ends as in a sweep that was never interrupted."""
    sweep = ["-m", "heads=1,2", "seed=0,1", "trainer.max_steps=60"]
    sweep += ["trainer.val_check_interval=10", "data.val_size=64"]
    reference_cwd = tmp_path / "reference"
    reference_cwd.mkdir()
    reference = train(reference_cwd, *sweep)
    assert reference.returncode == 0, reference.stderr[-3000:]
    (reference_dir,) = (reference_cwd / "logs" / "multiruns").iterdir()
    expected = sweep_jobs(reference_dir)

    proc = start_train(tmp_path, *sweep)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(
        tmp_path.glob("logs/multiruns/*/1_*/checkpoints/last.ckpt")
    ):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (interrupted,) = (tmp_path / "logs" / "multiruns").iterdir()
    before = {str(p): snapshot(p) for p in interrupted.iterdir()}
    assert [r["status"] for _, r in sorted(sweep_jobs(interrupted).items())] != ["finished"] * 4

    again = train(tmp_path, *sweep, "ckpt_path=last")
    assert again.returncode == 0, again.stderr[-3000:]
    assert {str(p): snapshot(p) for p in interrupted.iterdir()} == before  # untouched
    (finished,) = [d for d in (tmp_path / "logs" / "multiruns").iterdir() if d != interrupted]
    jobs = sweep_jobs(finished)
    assert sorted(jobs) == sorted(expected)
    originals = {job.name.split("_", 1)[1]: job for job in interrupted.glob("*_*")}
    (copied,) = [name for name, r in jobs.items() if "copied_from" in r]
    assert jobs[copied]["copied_from"] == str(originals[copied].resolve())
    (resumed,) = [name for name, r in jobs.items() if "resumed_from" in r]
    assert Path(jobs[resumed]["resumed_from"]).parent.parent.name.endswith(resumed)
    for name, saved in jobs.items():
        assert saved["status"] == "finished" and saved["step"] == 60, name
        for key, value in expected[name]["metrics"].items():
            assert saved["metrics"][key] == pytest.approx(value, abs=1e-6), (name, key)

    from src.analysis.runs import load_runs

    runs = load_runs(finished)
    assert len(runs) == 4 and {r.status for r in runs} == {"finished"}
