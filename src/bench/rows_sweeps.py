"""The --sweeps rows: one 4-job sweep under each Hydra launcher, and one run on 1 against 2
DDP processes; each a `python scripts/train.py` as a user types it, start-up included."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from src.bench.errors import BenchError
from src.paths import TRAIN_SCRIPT

SWEEP = [
    "heads=1,2",
    "scale=true,false",
    "trainer.max_steps=300",
    "trainer.val_check_interval=100",
    "trainer.enable_progress_bar=false",
]
LAUNCHERS = [  # (name, the overrides that choose it)
    ("joblib, 2 at a time", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]),
    (
        "submitit_local, 1 core each",
        ["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1"],
    ),
]


def wall_seconds(*args: str) -> float:
    """Wall time of `python scripts/train.py ARGS` in a fresh folder, start-up included."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(TRAIN_SCRIPT), *args], cwd=out, capture_output=True, text=True
        )
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(
            f"`python scripts/train.py {' '.join(args)}` failed (exit {proc.returncode}):\n"
            f"{proc.stderr[-3000:]}"
        )
    return wall


def sweep_rows() -> list[dict]:
    """The same 4-job sweep under each launcher, and one run on 1 vs 2 DDP processes."""
    basic = wall_seconds("-m", *SWEEP)
    rows = [
        {
            "what": "4-job sweep, 300 steps each: basic launcher (s)",
            "value": basic,
            "goal": "",
            "detail": "one job after another, in one process",
        }
    ]
    for name, launcher in LAUNCHERS:
        wall = wall_seconds("-m", *launcher, *SWEEP)
        rows.append(
            {
                "what": f"4-job sweep: basic / {name}",
                "value": basic / wall,
                "goal": "> 1 is faster",
                "detail": f"{wall:.1f} s",
            }
        )
    single = ["trainer.max_steps=300", "trainer.enable_progress_bar=false"]
    one, two = wall_seconds(*single), wall_seconds("trainer=ddp", *single)
    rows.append(
        {
            "what": "one run, 300 steps: 1 process / DDP on 2 processes",
            "value": one / two,
            "goal": "> 1 is faster",
            "detail": f"{one:.1f} s vs {two:.1f} s, start-up included",
        }
    )
    return rows
