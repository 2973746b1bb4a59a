"""Fault-injection soak: a 12-job sweep, 2 jobs at a time, with jobs SIGKILLed at random
moments and the disk filled once, finished by re-running its command with ckpt_path=last.

    python -m tests.soak [--seed N]      (as root, for the tmpfs; prints the figures)

It checks what README "When things go wrong" promises: every job of the last sweep folder
ends with the metrics of an uninterrupted sweep (to 1e-6), no file of an earlier folder
is rewritten, and the last folder holds no `running` record. tests/integration runs it
under the `soak` marker.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from src.paths import ROOT
from src.paths import TRAIN_SCRIPT as TRAIN
from src.training.checkpointing import step_of

SWEEP = [
    "-m",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
    "heads=1,2,4",
    "seed=0,1,2,3",
    "trainer.max_steps=150",
    "trainer.val_check_interval=25",
    "data.val_size=64",
]
FAULTS = ["kill", "kill", "disk_full", "kill"]  # one per round, in this order
TOLERANCE = 1e-6


@dataclass
class Soak:
    rounds: int = 0
    kills: int = 0
    disk_full_failures: int = 0
    exits: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sweep(log_dir: Path, *extra: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(TRAIN), *SWEEP, f"paths.log_dir={log_dir}", *extra]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def job_records(sweep_dir: Path) -> dict[Path, dict]:
    """{job folder: record} for a sweep folder (an unreadable record: {})."""
    found = {}
    for job in sweep_dir.glob("*_*"):
        try:
            found[job] = json.loads((job / "metrics.json").read_text())
        except (OSError, ValueError):
            found[job] = {}
    return found


def records(sweep_dir: Path) -> dict[str, dict]:
    """{job name without its number: record}, to match jobs across sweeps."""
    return {job.name.split("_", 1)[1]: r for job, r in job_records(sweep_dir).items()}


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (no psutil here)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


def job_processes(pid: int) -> list[int]:
    """The joblib (loky) workers that run the jobs: not its resource tracker."""
    workers = []
    for child in descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"loky" in command and b"resource_tracker" not in command:
            workers.append(child)
    return workers


def fill(mount: Path) -> Path:
    """Write a file until the disk is full; it is removed once a job has failed."""
    filler = mount / "filler"
    with open(filler, "wb") as file:
        try:
            while True:
                file.write(b"\0" * (1 << 20))
                file.flush()
        except OSError:
            pass
    return filler


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and p.name != "filler"
    }


def checkpointed_step(run: Path) -> int:
    """The step a killed run would be resumed from: its own last.ckpt's, else that of the
    checkpoint it had itself resumed from (its train.log says which), else 0."""
    checkpoint = run / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        log = run / "train.log"
        found = re.search(r"resuming from (\S+)", log.read_text()) if log.is_file() else None
        checkpoint = Path(found.group(1)) if found else None
    step = step_of(checkpoint) if checkpoint is not None else 0
    return step if isinstance(step, int) else 0


def last_logged_step(run: Path) -> int:
    """The last `step N/M` line of a run's train.log (every trainer.log_every_n_steps)."""
    try:
        steps = re.findall(r"step (\d+)/", (run / "train.log").read_text())
    except OSError:
        return 0
    return int(steps[-1]) if steps else 0


def run_round(
    log_dir: Path, cwd: Path, fault: str | None, rng: random.Random, soak: Soak
) -> tuple[Path, bool]:
    """One run of the sweep's command, with `fault` at a random moment; returns its sweep
    folder and whether the fault struck (a round can end before it does)."""
    struck = False
    known = set((log_dir / "multiruns").glob("*")) if (log_dir / "multiruns").is_dir() else set()
    proc = sweep(log_dir, *(["ckpt_path=last"] if soak.rounds else []), cwd=cwd)
    soak.rounds += 1
    if fault is not None:
        # wait until a job of this round has checkpointed, then strike at a random moment
        while proc.poll() is None:
            new = [d for d in (log_dir / "multiruns").glob("*") if d not in known]
            if new and list(new[0].glob("*/checkpoints/last.ckpt")):
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 3.0))
        if proc.poll() is None:
            if fault == "kill":
                workers = job_processes(proc.pid)
                if workers:
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    soak.kills += 1
                    struck = True
            else:
                filler = fill(log_dir)
                while proc.poll() is None:  # until a job records the failure
                    new = [d for d in (log_dir / "multiruns").glob("*") if d not in known]
                    if new and any(r.get("status") == "failed" for r in records(new[0]).values()):
                        soak.disk_full_failures += 1
                        struck = True
                        break
                    time.sleep(0.05)
                filler.unlink()
    _, stderr = proc.communicate()
    soak.exits.append(proc.returncode)
    if "Traceback" in stderr:  # name the exception: the line that ends the first traceback
        after = stderr.split("Traceback", 1)[1].splitlines()[1:]
        raised = next((line for line in after if line and not line[0].isspace()), "?")
        soak.notes.append(f"round {soak.rounds}: exit {proc.returncode}, {raised[:160]}")
    (new,) = [d for d in (log_dir / "multiruns").glob("*") if d not in known]
    return new, struck


def main(seed: int = 0, workdir: Path | None = None) -> dict:
    rng = random.Random(seed)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="attnlab-soak-"))
    started = time.perf_counter()
    reference_logs = workdir / "reference"
    ref = sweep(reference_logs, cwd=workdir)
    ref.communicate()
    assert ref.returncode == 0, "the uninterrupted sweep failed"
    (reference_dir,) = (reference_logs / "multiruns").glob("*")
    expected = records(reference_dir)
    reference_s = time.perf_counter() - started

    mount = workdir / "disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192m", "tmpfs", str(mount)])
    faults = list(FAULTS)
    if mounted.returncode != 0:
        faults.remove("disk_full")
        print("no tmpfs could be mounted (needs root): the disk-full event was left out")
    soak = Soak()
    seen: dict[str, tuple[int, int]] = {}
    try:
        while True:
            fault = faults[0] if faults else None
            last, struck = run_round(mount, workdir, fault, rng, soak)
            if struck:
                faults.pop(0)  # a fault that missed its round is tried again in the next
            now = snapshot(mount)
            rewritten = [p for p, stamp in seen.items() if now.get(p) != stamp]
            assert not rewritten, f"files of an earlier round were rewritten: {rewritten[:3]}"
            seen = now
            done = records(last)
            finished = all(r.get("status") == "finished" for r in done.values())
            if finished and len(done) == len(expected):
                if faults:
                    soak.notes.append(f"the sweep finished before these struck: {faults}")
                break
            assert soak.rounds < 12, "the sweep did not finish in 12 rounds"
        resumed = sum(
            "ckpt_path=last: resuming from" in log.read_text()
            for log in mount.glob("multiruns/*/*/train.log")
        )
        killed = [  # a record left `running` in an earlier round's folder: a kill
            run
            for folder in mount.glob("multiruns/*")
            if folder != last
            for run, record in job_records(folder).items()
            if record.get("status") == "running"
        ]
        lost = [max(0, last_logged_step(run) - checkpointed_step(run)) for run in killed]
        worst = 0
        for metrics_name, saved in done.items():
            assert saved["status"] == "finished", metrics_name
            for key, value in expected[metrics_name]["metrics"].items():
                diff = abs(saved["metrics"][key] - value)
                worst = max(worst, diff)
                assert diff <= TOLERANCE, (metrics_name, key, saved["metrics"][key], value)
        summary = {
            "jobs": len(done),
            "rounds": soak.rounds,
            "kills": soak.kills,
            "disk_full_failures": soak.disk_full_failures,
            "killed_jobs": len(killed),
            "resumes_from_a_checkpoint": resumed,
            "copied": sum("copied_from" in r for r in done.values()),
            "most_steps_lost_to_one_kill": max(lost, default=0),
            "largest_metric_difference": worst,
            "running_in_last_folder": sum(r.get("status") == "running" for r in done.values()),
            "round_exit_codes": soak.exits,
            "reference_s": round(reference_s, 1),
            "soak_s": round(time.perf_counter() - started - reference_s, 1),
            "notes": soak.notes,
        }
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="when the faults strike")
    print(json.dumps(main(parser.parse_args().seed), indent=2))
