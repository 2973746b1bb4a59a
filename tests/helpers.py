"""What tests share: the repository's paths, the tiny run config, composing a config, running
a script as a user would, reading what a run wrote, and run folders made by hand. A module
of its own (not conftest, which pytest loads itself) so every test imports it one way:
`from tests.helpers import ...`."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.analysis import metric_names as names
from src.paths import CONF_DIR as CONF
from src.paths import ROOT, TRAIN_SCRIPT

__all__ = [
    "BASE_CONFIG",
    "CONF",
    "DIVERGING",
    "HIGH_LR",
    "INSPECTED_RUN",
    "PROMPT",
    "PYTHON",
    "ROOT",
    "SCALARS",
    "TINY",
    "TRAIN_SCRIPT",
    "assert_refused_before_training",
    "compose_config",
    "finished_record",
    "free_port",
    "group_options",
    "make_run_folder",
    "make_run_folders",
    "read_events",
    "run_script",
    "run_sweep",
    "seeds_column",
    "snapshot",
    "start_python",
    "start_script",
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

# The scalars every run logs to TensorBoard.
SCALARS = [
    "train/loss",
    "train/acc",
    "train/exact_match",
    "val/loss",
    "val/acc",
    "val/exact_match",
    "train/lr",
]

# An oversized scale and learning rate: non-finite within a few steps. Which step depends on
# the CPU's float rounding and thread count, so tests find it by replaying without the guard.
# Validation (so a checkpoint) after every step, so one exists before the bad step.
DIVERGING = ["scale=10000", "model.warmup_steps=1", "trainer.max_steps=30"]
DIVERGING += ["trainer.val_check_interval=1"]
HIGH_LR = "model.lr=100"

# The run the inspect tests look at (conftest's `trained_run`): partly trained (some val
# examples right, not all), 2 layers x 2 heads; PROMPT is one of its task's prompts.
INSPECTED_RUN = [
    "heads=2",
    "task.length=4",
    "task.num_symbols=5",
    "trainer.max_steps=80",
    "trainer.val_check_interval=40",
    "data.val_size=128",
    "trainer.enable_model_summary=false",
]
PROMPT = "e a d b"  # sort, length 4, symbols a..e


def compose_config(name: str, overrides: Iterable[str], output_dir: Path) -> DictConfig:
    """conf/NAME.yaml with `overrides`, composed with Hydra's compose API (as the scripts
    compose it), writing into `output_dir`."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


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


def start_script(script: Path, *args: str, **popen: Any) -> subprocess.Popen:
    """run_script's counterpart left running, for a test that waits for it or kills it.
    `popen`: subprocess.Popen's arguments (cwd, env, where its output goes)."""
    return subprocess.Popen([PYTHON, str(script), *args], **popen)


def start_python(code: str, **popen: Any) -> subprocess.Popen:
    """`python -c CODE` in a fresh interpreter, left running; `popen` as for start_script."""
    return subprocess.Popen([PYTHON, "-c", code], **popen)


def run_sweep(sweep_dir: Path, *overrides: str, cwd: Path | None = None, timeout: int = 600):
    """`python scripts/train.py -m OVERRIDES` writing its jobs into `sweep_dir`."""
    return run_script(
        TRAIN_SCRIPT, "-m", *overrides, f"hydra.sweep.dir={sweep_dir}", cwd=cwd, timeout=timeout
    )


def read_events(run_dir: Path) -> EventAccumulator:
    """The TensorBoard events a run wrote into `run_dir`, loaded."""
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return events


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder below `folder` with its size and modification time: two equal
    snapshots mean nothing below it was written, added or removed in between."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def assert_refused_before_training(code, stderr: str, message: str, folder: Path) -> None:
    """Refused with one paragraph naming the problem, no traceback, nothing trained; the
    run's folder (when Hydra got as far as making one) records the refusal."""
    assert code not in (0, None)
    assert message in stderr
    assert "Traceback" not in stderr
    if "Could not find" not in message:  # Hydra's own errors aside: one paragraph
        error = stderr[stderr.index("error: ") :].strip()
        assert "\n" not in error, error
        assert not re.search(r"\b[A-Z]\w*(Error|Exception)\b", error), error
    if "Could not find 'task" in message:
        assert "Available options in 'task'" in stderr and "assoc_recall" in stderr
    if "Could not find 'hydra/launcher" in message:
        assert "joblib" in stderr and "submitit_local" in stderr  # the options, listed
    assert not list(folder.rglob("*.ckpt"))
    for record in folder.rglob("metrics.json"):  # the folder a refused run leaves
        saved = json.loads(record.read_text())
        assert saved["status"] == "refused" and message in saved["error"]
        assert message in (record.parent / "train.log").read_text()
        assert sorted(p.name for p in record.parent.iterdir()) == [
            ".hydra",
            "metrics.json",
            "train.log",
        ]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now, for a server a test starts (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def make_run_folder(
    root: Path,
    name: str,
    heads: int = 1,
    seed: int = 0,
    record: dict | str | bytes | None = None,
    curves: dict[str, list[tuple[int, float]]] | None = None,
    *,
    config: str | None = None,
    overrides: Iterable[str] | None = None,
) -> Path:
    """root/NAME made by hand as scripts/train.py leaves a run folder, no training: its
    .hydra/config.yaml (`config`'s text; by default heads, scale, seed and the Sort task),
    its .hydra/overrides.yaml when `overrides` are given, its record metrics.json (a dict
    is written as JSON, str or bytes as they are; None: none written) and real TensorBoard
    events (`curves`: {tag: [(step, value), ...]}). Returns the folder."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    if config is None:
        config = (
            f"heads: {heads}\nscale: true\nseed: {seed}\ntask:\n  _target_: src.data.tasks.Sort\n"
        )
    (run / ".hydra" / "config.yaml").write_text(config)
    if overrides is not None:
        (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if isinstance(record, dict):
        record = json.dumps(record)
    if isinstance(record, str):
        (run / "metrics.json").write_text(record)
    elif isinstance(record, bytes):
        (run / "metrics.json").write_bytes(record)
    if curves:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(run))
        for tag, points in curves.items():
            for step, value in points:
                writer.add_scalar(tag, value, step)
        writer.close()
    return run


# The rest of a hand-made run's .hydra/config.yaml, after the keys a test varies (for
# make_run_folders): the Sort task, a learning rate and a width every run shares.
BASE_CONFIG = (
    "task:\n  _target_: src.data.tasks.Sort\nmodel:\n  lr: 0.003\n  net:\n    d_model: 64\n"
)


def make_run_folders(root: Path, configs: Iterable[str]) -> None:
    """One run folder per text of .hydra/config.yaml in `configs`, named 0_run, 1_run, ...
    under `root` (as make_run_folder makes them: no record, no events)."""
    for i, config in enumerate(configs):
        make_run_folder(root, f"{i}_run", config=config)


def finished_record(loss: float = 0.1) -> dict:
    """A finished run's metrics.json (for make_run_folder): step 60, its val/loss `loss`."""
    return {"status": "finished", "step": 60, "metrics": {names.VAL_LOSS: loss}}


def seeds_column(summary: str, label: str) -> str:
    """The last column of compare's table (finished/all seeds, and the other statuses
    counted) in the row labelled `label`, from summary.md or compare.py's printed table."""
    (row,) = [line for line in summary.splitlines() if line.startswith(f"| {label} |")]
    return row.split("|")[-2].strip()
