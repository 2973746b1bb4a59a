"""Shared fixtures: the real configs, composed with Hydra's compose API."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
TRAIN_SCRIPT = ROOT / "scripts" / "train.py"
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


@pytest.fixture(autouse=True)
def _forget_hydras_logging_setup():
    """Tests that run scripts/train.py in this process let Hydra configure logging, with
    handlers bound to that test's captured output; they must not outlive the test."""
    yield
    for name in ("src", ""):
        logger = logging.getLogger(name or None)
        for handler in list(logger.handlers):
            if type(handler) in (logging.StreamHandler, logging.FileHandler):  # not pytest's
                logger.removeHandler(handler)
    logging.getLogger("src").propagate = True


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose_cfg(*overrides) -> the train config, writing into tmp_path."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides))
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path)
        return cfg

    return _compose
