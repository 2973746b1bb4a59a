"""What tests share: the repository's paths, the tiny run config, and running a script as a
user would. A module of its own (not conftest, which pytest loads itself) so every test
imports it one way: `from tests.helpers import ...`."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from src.paths import CONF_DIR as CONF
from src.paths import ROOT, TRAIN_SCRIPT

__all__ = [
    "CONF",
    "PYTHON",
    "ROOT",
    "TINY",
    "TRAIN_SCRIPT",
    "free_port",
    "group_options",
    "run_script",
    "run_sweep",
]

PYTHON = sys.executable

# Small and fast: enough steps to exercise validation, checkpointing and logging. The step
# bar stays on, as a user has it: a resume once crashed in it while every test had it off.
TINY = [
    "trainer.max_steps=6",
    "trainer.val_check_interval=4",
    "data.val_size=64",
    "trainer.enable_model_summary=false",
]


def run_script(
    script: Path,
    *args: str,
    cwd: Path | None = None,
    timeout: int = 300,
    env: dict[str, str] | None = None,
    **popen: Any,
):
    """Run one of scripts/ as a user would, in a fresh interpreter; output captured as text.
    `popen`: more of subprocess.run's arguments (a preexec_fn that limits the process)."""
    return subprocess.run(
        [PYTHON, str(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **popen,
    )


def run_sweep(sweep_dir: Path, *overrides: str, cwd: Path | None = None, timeout: int = 600):
    """`python scripts/train.py -m OVERRIDES` writing its jobs into `sweep_dir`."""
    return run_script(
        TRAIN_SCRIPT, "-m", *overrides, f"hydra.sweep.dir={sweep_dir}", cwd=cwd, timeout=timeout
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now, for a server a test starts (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))
