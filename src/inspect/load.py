"""Which trained model to look at, and loading it: the run's own saved config rebuilds the
network (nobody retypes heads, scale or the task), the checkpoint's weights load with
weights_only. A bad value is a ConfigError (exit 2), raised before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from src.data.tasks import Task
from src.modules import TransformerLM
from src.preflight.checks import ConfigError
from src.runs.targets import current_targets
from src.training.build import build_model, instantiate, resolve_checkpoint
from src.training.build import log as building_log
from src.training.checkpointing import CheckpointError, check_fits, load_checkpoint

INSPECT_KEYS = ("run", "prompt", "random", "top_k")  # not part of the run being inspected


@dataclass
class Loaded:
    """A trained model with what it was trained on."""

    task: Task
    net: TransformerLM
    run_dir: Path
    checkpoint: Path
    step: int
    config: DictConfig  # the run's own, from its .hydra/config.yaml


def locate(cfg: DictConfig) -> tuple[Path, Path]:
    """(run folder, checkpoint) from `run=FOLDER`, `ckpt_path=last` or `ckpt_path=FILE`."""
    run, ckpt_path = cfg.get("run"), cfg.get("ckpt_path")
    if run is not None and ckpt_path is not None:
        raise ConfigError(
            f"run={run} and ckpt_path={ckpt_path} both name a model. Allowed: one of them: "
            "run=FOLDER (its checkpoints/last.ckpt), or ckpt_path=last|FILE."
        )
    if run is None and ckpt_path is None:
        raise ConfigError(
            "no model given. Allowed: run=FOLDER (a run folder under logs/runs/), "
            "ckpt_path=FILE (a checkpoint), or ckpt_path=last with the run's own overrides "
            "(e.g. heads=2 scale=false ckpt_path=last)."
        )
    if run is not None:
        folder = Path(str(run))
        if not folder.is_dir():
            raise ConfigError(
                f"run={run}: no such folder. Allowed: a run folder written by "
                "scripts/train.py, e.g. logs/runs/<time>_heads=2,scale=false (`ls logs/runs`)."
            )
        checkpoint = folder / "checkpoints" / "last.ckpt"
        if not checkpoint.is_file():
            raise ConfigError(
                f"run={run} has no checkpoints/last.ckpt (it is written at the first "
                "validation), so there are no weights to look at. Allowed: a run folder that "
                "validated at least once, or ckpt_path=FILE for a checkpoint elsewhere."
            )
    else:
        train_cfg = _train_config(cfg)
        # train.py's own lookup and checks, so `last` means (and fails) exactly as it does there
        building_log.disabled = True  # it would say "resuming from"
        try:
            checkpoint = Path(
                resolve_checkpoint(train_cfg, _probe_model(train_cfg), to_resume=False)
            )
        finally:
            building_log.disabled = False
        folder = checkpoint.parent.parent
    if not (folder / ".hydra" / "config.yaml").is_file():
        raise ConfigError(
            f"{folder} has no .hydra/config.yaml, so the model cannot be rebuilt (its heads, "
            "scale and task are read from there). Allowed: a run folder written by "
            "scripts/train.py, or a checkpoint inside one (FOLDER/checkpoints/last.ckpt)."
        )
    return folder, checkpoint


def _train_config(cfg: DictConfig) -> DictConfig:
    """The train config these overrides give: the inspect-only keys dropped."""
    train_cfg = cfg.copy()
    with open_dict(train_cfg):
        for key in INSPECT_KEYS:
            train_cfg.pop(key, None)
    return train_cfg


def _probe_model(cfg: DictConfig) -> torch.nn.Module:
    return build_model(cfg, instantiate(cfg.task, "task"))


def saved_config(run_dir: Path) -> tuple[DictConfig, Task]:
    """The run's own config and task, from its .hydra/config.yaml."""
    written = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    saved = OmegaConf.create(current_targets(OmegaConf.to_container(written)))
    return saved, instantiate(saved.task, "task")


def load(run_dir: Path, checkpoint: Path) -> Loaded:
    """The run's model, rebuilt from its saved config, with the checkpoint's weights."""
    saved, task = saved_config(run_dir)
    model = _probe_model(saved)
    try:
        state = load_checkpoint(checkpoint)  # weights_only=True
        check_fits(state, model, checkpoint)
    except CheckpointError as err:
        raise ConfigError(str(err)) from None
    model.load_state_dict(state["state_dict"])
    return Loaded(task, model.net.eval(), run_dir, checkpoint, state["global_step"], saved)
