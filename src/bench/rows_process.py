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
    command to exit, in fresh processes; where the median run's time went (its train.log's
    `time:` line, src/training/timing.py; `exit` is what is left: the end of `train()`,
    the interpreter's exit); and its peak RSS."""
    from src.training.timing import PHASES, PHASES_LINE  # the bench's parent may load torch

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
            log = (Path(out) / "train.log").read_text()
            metrics = json.loads((Path(out) / "metrics.json").read_text())["metrics"]
        found = PHASES_LINE.search(log)
        if found is None:
            raise BenchError("the default run's train.log has no `time:` line")
        parts = dict(
            zip(PHASES, (float(v) if v != "n/a" else float("nan") for v in found.groups()))
        )
        runs.append((proc, parts, metrics.get("val/exact_match", float("nan"))))
    runs.sort(key=lambda r: r[0].wall_s)
    mid, parts, exact = runs[len(runs) // 2]
    parts["validation"] -= parts["generation"]  # shown apart
    parts["exit"] = mid.wall_s - sum(parts.values())
    shares = ", ".join(f"{k} {v:.1f} s ({v / mid.wall_s:.0%})" for k, v in parts.items())
    return [
        {
            "what": f"default run, command to exit (s) ({bytecode_label()})",
            "value": mid.wall_s,
            "goal": "<= 20 s",
            "detail": f"python scripts/train.py, median of {repeats}: {shares}",
        },
        {
            "what": "default run: val exact match",
            "value": exact,
            "goal": ">= 1.0",
            "detail": "the median run's",
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


# The thread arms (src/bench/threads_probe.py) and the loads each is measured under.
THREAD_ARMS = {"default": "torch default threads", "1": "1 thread", "policy": "thread policy"}
LOADS = {
    "idle": "",
    "loaded": ", one busy process beside it from the start",
    "later": ", one busy process started after the threads were chosen",
}


def its_in_fresh_process(arm: str, steps: int, warmup: int, load: str) -> dict:
    """Default-shape training it/s in a fresh process whose threads are set as `arm` says
    (THREAD_ARMS) before its first step; `load`: LOADS. Returns the probe's JSON."""
    env = child_env(os.environ)  # no OMP_*/MKL_* variables: torch's defaults, or the policy's
    cmd = probe_command("threads_probe", arm, str(steps), str(warmup))
    if load == "later":
        cmd.append("--busy-later")
    if load == "loaded":
        with busy_process(max_seconds=900):
            time.sleep(1.0)  # its interpreter starts, then spins
            proc = run_timed(cmd, env, cwd=ROOT)
    else:
        proc = run_timed(cmd, env, cwd=ROOT)
    check_exit(proc, f"the {arm} threads probe ({load})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def thread_rows(quick: bool, repeats: int) -> list[dict]:
    """torch's default threads, one thread and the thread policy, idle and beside one busy
    process (and, for the policy, one that starts after it chose); every figure from its
    own fresh process, arms alternated. `quick`: the three figures the goals need."""
    steps, warmup = (40, 5) if quick else (200, 20)
    pairs = [("default", "idle"), ("policy", "idle"), ("policy", "loaded")]
    if not quick:
        pairs += [("default", "loaded"), ("1", "idle"), ("1", "loaded"), ("policy", "later")]
    arms = {
        f"{arm} {load}": (lambda arm=arm, load=load: its_in_fresh_process(arm, steps, warmup, load))
        for arm, load in pairs
    }
    runs = alternate(arms, repeats)
    its = {name: median([r["it_s"] for r in v]) for name, v in runs.items()}
    chose = {name: sorted({r["threads"] for r in v}) for name, v in runs.items()}
    rows = [
        {
            "what": f"train it/s, default shape, {load}, {THREAD_ARMS[arm]}",
            "value": its[f"{arm} {load}"],
            "goal": "",
            "detail": f"{steps} steps, median of {repeats}{LOADS[load]}; "
            f"threads {'/'.join(map(str, chose[f'{arm} {load}']))}",
        }
        for arm, load in pairs
    ]
    goals = {
        ("policy", "idle", "default", "idle"): ">= 0.9",
        ("policy", "loaded", "policy", "idle"): ">= 0.5",
    }
    ratios = [
        ("policy", "idle", "default", "idle"),
        ("policy", "loaded", "policy", "idle"),
        ("default", "loaded", "default", "idle"),
        ("1", "idle", "default", "idle"),
        ("1", "loaded", "1", "idle"),
        ("policy", "later", "policy", "idle"),
    ]
    for a, la, b, lb in ratios:
        if f"{a} {la}" in its and f"{b} {lb}" in its:
            rows.append(
                {
                    "what": f"it/s, {THREAD_ARMS[a]} {la} / {THREAD_ARMS[b]} {lb}",
                    "value": ratio(its[f"{a} {la}"], its[f"{b} {lb}"]),
                    "goal": goals.get((a, la, b, lb), "(report)"),
                    "detail": "",
                }
            )
    return rows
