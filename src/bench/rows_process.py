"""The bench's rows measured in fresh processes, as a user's, CI's and every sweep job's
start: start-up to the first optimizer step, the default run, the quick exits (`--help`, a
config error) and training speed under each thread setting, idle and beside a busy process.

The start-up and thread probes are modules of their own (src/bench/startup_probe.py,
src/bench/threads_probe.py), run as `python -m src.bench.<probe>` from the repository root."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from src.bench.errors import BenchError
from src.bench.measure import (
    ProcessResult,
    alternate,
    busy_process,
    child_env,
    median,
    ratio,
    run_timed,
)
from src.paths import ROOT, TRAIN_SCRIPT
from src.preflight.threads import available_cpus, thread_policy


def check_exit(proc: ProcessResult, what: str) -> None:
    """BenchError with the end of the child's stderr unless it exited 0."""
    if proc.returncode != 0:
        raise BenchError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def bytecode_present() -> bool:
    """Whether lightning's modules have .pyc files next to them (a `uv sync` with
    compile-bytecode, or a run without PYTHONDONTWRITEBYTECODE, leaves them)."""
    spec = importlib.util.find_spec("lightning")
    origin = spec.origin if spec else None
    return bool(origin) and Path(importlib.util.cache_from_source(origin)).is_file()


def bytecode_label() -> str:
    present = "present" if bytecode_present() else "ABSENT"
    return f".pyc {present}, PYTHONDONTWRITEBYTECODE=1"


def probe_command(probe: str, *args: str) -> list[str]:
    """`python -m src.bench.PROBE ARGS`; run it with cwd=ROOT, so `src` is this checkout."""
    return [sys.executable, "-m", f"src.bench.{probe}", *args]


def startup(repeats: int) -> list[dict]:
    """Process start to first optimizer step, and where it goes (fresh interpreters, as a
    user's, CI's and every sweep job's: PYTHONDONTWRITEBYTECODE=1, so no .pyc is written
    on the way and only those the install compiled count)."""
    env = child_env(os.environ, PYTHONDONTWRITEBYTECODE="1")
    results = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            cmd = probe_command("startup_probe", repr(time.time()), out)
            proc = run_timed(cmd, env, cwd=ROOT)
        check_exit(proc, "the start-up probe")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    label = bytecode_label()
    rows, previous = [], 0.0
    for mark in results[0]:
        at = median([r[mark] for r in results])
        last = mark == "first optimizer step done"
        rows.append(
            {
                "what": f"start-up: {mark}" + (f" ({label})" if last else ""),
                "value": at,
                "goal": "<= 4 s" if last else "",
                "detail": f"+{at - previous:.2f} s, median of {repeats}",
            }
        )
        previous = at
    return rows


def default_run(repeats: int) -> list[dict]:
    """`python scripts/train.py` as a user types it (1000 steps, no progress bar), from
    command to exit, in fresh processes; and the peak RSS of the median run."""
    env = child_env(os.environ, PYTHONDONTWRITEBYTECODE="1")
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            cmd = [
                sys.executable,
                str(TRAIN_SCRIPT),
                "trainer.enable_progress_bar=false",
                f"hydra.run.dir={out}",
            ]
            proc = run_timed(cmd, env)
        check_exit(proc, "the default run")
        runs.append(proc)
    runs.sort(key=lambda r: r.wall_s)
    mid = runs[len(runs) // 2]
    return [
        {
            "what": f"default run, command to exit (s) ({bytecode_label()})",
            "value": mid.wall_s,
            "goal": "<= 20 s",
            "detail": f"python scripts/train.py, median of {repeats}",
        },
        {
            "what": "default run: peak RSS (MiB)",
            "value": mid.peak_rss_mib,
            "goal": "report",
            "detail": "the median run's own peak",
        },
    ]


def quick_exit_rows(repeats: int) -> list[dict]:
    """`--help` and a config error answer before torch loads."""
    rows = []
    for what, args, code in [
        ("`scripts/train.py --help`", ["--help"], 0),
        ("a config error (`task=nonsense`)", ["task=nonsense"], 1),
    ]:
        walls = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as out:
                proc = run_timed([sys.executable, str(TRAIN_SCRIPT), *args], cwd=out)
            if (proc.returncode == 0) != (code == 0):
                check_exit(proc, what)
            walls.append(proc.wall_s)
        rows.append(
            {
                "what": f"{what}: wall time (s)",
                "value": median(walls),
                "goal": "<= 1 s",
                "detail": f"median of {repeats}",
            }
        )
    return rows


def its_in_fresh_process(arm: str, steps: int, warmup: int, loaded: bool) -> float:
    """Default-shape training it/s in a fresh process whose thread settings are set before
    torch loads: `old` = torch's defaults, `policy` = src.preflight.threads.thread_policy."""
    env = child_env(os.environ)  # no OMP_*/MKL_* variables: torch's defaults, or the policy's
    threads = None
    if arm == "policy":
        threads = thread_policy(None, None, available_cpus(), env).threads
    cmd = probe_command("threads_probe", json.dumps(threads), str(steps), str(warmup))
    if loaded:
        with busy_process(max_seconds=900):
            proc = run_timed(cmd, env, cwd=ROOT)
    else:
        proc = run_timed(cmd, env, cwd=ROOT)
    check_exit(proc, f"the {arm} threads probe")
    return json.loads(proc.stdout.strip().splitlines()[-1])["it_s"]


def thread_rows(quick: bool, repeats: int) -> list[dict]:
    """Idle and under one competing busy process, torch's default threads against the
    thread policy; every figure from its own fresh process, arms alternated."""
    steps, warmup = (40, 5) if quick else (200, 20)
    # --quick leaves out the old default under load (the "(before)" row): a fresh process
    # each is ~7 s of a minute
    pairs = [("old", "idle"), ("policy", "idle"), ("policy", "loaded")]
    if not quick:
        pairs.insert(1, ("old", "loaded"))
    arms = {
        f"{arm} {load}": (
            lambda arm=arm, load=load: its_in_fresh_process(arm, steps, warmup, load == "loaded")
        )
        for arm, load in pairs
    }
    its = {name: median(v) for name, v in alternate(arms, repeats).items()}
    names = {"old": "torch default threads", "policy": "thread policy"}
    rows = [
        {
            "what": f"train it/s, default shape, {load}, {names[arm]}",
            "value": its[f"{arm} {load}"],
            "goal": "",
            "detail": f"{steps} steps, median of {repeats}"
            + (", one busy process beside it" if load == "loaded" else ""),
        }
        for arm, load in pairs
    ]
    for arm in [arm for arm, load in pairs if load == "loaded"]:
        rows.append(
            {
                "what": f"it/s under one busy process / idle, {names[arm]}",
                "value": ratio(its[f"{arm} loaded"], its[f"{arm} idle"]),
                "goal": ">= 0.5" if arm == "policy" else "(before)",
                "detail": "",
            }
        )
    rows.append(
        {
            "what": "idle it/s, thread policy / torch default threads",
            "value": ratio(its["policy idle"], its["old idle"]),
            "goal": ">= 0.95",
            "detail": thread_policy(None, None, available_cpus(), {}).why,
        }
    )
    return rows
