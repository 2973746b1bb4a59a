"""Config -> the parts of a run, every value checked before the first training step.

`build` makes everything a training run needs; `build_model` only the model (inspect and the
benchmarks rebuild a saved run's network with it). Both instantiate through `instantiate`,
which turns Hydra's wrapped errors into one ConfigError naming the key.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.errors import InstantiationException
from lightning.pytorch.accelerators import CPUAccelerator
from omegaconf import DictConfig, OmegaConf

from src.data.datamodule import TaskDataModule
from src.data.tasks import Task
from src.preflight.checks import ConfigError, check_values, model_config, name_config_keys
from src.preflight.devices import check_devices
from src.preflight.memory import check_memory, estimate_memory
from src.runs.folders import find_last_checkpoint
from src.training.checkpointing import (
    THREADS_KEY,
    CheckpointError,
    RecordModelConfig,
    check_fits,
    check_not_finished,
    check_same_model,
    load_checkpoint,
)
from src.training.lit_module import LitTransformerLM
from src.training.progress import (
    ProgressLog,
    StepProgressBar,
    SummaryWithoutFlops,
    silence_litlogger_advert,
)
from src.training.timing import PhaseTimes
from src.validation import is_int

# Lightning's own use of a deprecated torch API; nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# A resumed run writes into its own new folder by design, never into the one it resumes.
warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
silence_litlogger_advert()

log = logging.getLogger(__name__)


def instantiate(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, with the underlying error re-raised as one readable ConfigError.

    The layer's message names its own arguments (`length=0`); this names the keys that held
    them (`task.length=0`), once. A message naming none of them says where it came from.
    """
    try:
        return hydra.utils.instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as err:
        found = re.search(r"full_key: (\S+)", str(err))
        where = found.group(1) if found else key
        cause = err.__cause__ if err.__cause__ is not None else err
        sub = node if where == key else OmegaConf.select(node, where.removeprefix(key + "."))
        named = name_config_keys(str(cause), sub, where) if isinstance(sub, DictConfig) else None
        raise ConfigError(named or f"invalid value in `{where}`: {cause}") from err


@dataclass(frozen=True)
class Built:
    """Every part of a run, as `build` makes them from the config."""

    cfg: DictConfig
    task: Task
    datamodule: TaskDataModule
    model: LitTransformerLM
    trainer: L.Trainer
    ckpt_path: str | None  # the checkpoint to resume from, checked; None: a fresh run
    ckpt_threads: int | None = None  # the torch threads that checkpoint's run used, if recorded


def build(cfg: DictConfig, extra_callbacks: Sequence[L.Callback] = ()) -> Built:
    """Check the config, seed, and instantiate every part of a run, in data-flow order.

    The seed is set only once the values are checked (a bad seed is refused, not passed to
    numpy), and before the model's weights are drawn. The memory estimate comes right after
    the task (which only stores its sizes), so a run that cannot fit is refused before
    anything large is allocated. `extra_callbacks` join the config's (tests, benchmarks).
    """
    check_values(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = instantiate(cfg.task, "task")
    estimate = estimate_memory(cfg, task.vocab_size, task.seq_len)
    check_memory(cfg, estimate)
    if estimate is not None:
        log.info("%s", estimate.summary())
    datamodule = instantiate(cfg.data, "data", task=task)
    model = build_model(cfg, task)
    resumed = checked_checkpoint(cfg, model)  # refused before the trainer is even built
    ckpt_path, checkpoint = resumed if resumed is not None else (None, {})
    ckpt_threads = checkpoint.get(THREADS_KEY)
    callbacks = [instantiate(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items()]
    callbacks += [RecordModelConfig(model_config(cfg)), ProgressLog()]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(StepProgressBar())
    if cfg.trainer.get("enable_model_summary", True):
        callbacks.append(SummaryWithoutFlops())
    callbacks += [*extra_callbacks, PhaseTimes()]
    loggers = [instantiate(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items()]
    check_devices(cfg.trainer)
    trainer = instantiate(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    _check_split(cfg.data, trainer.world_size)
    if isinstance(trainer.accelerator, CPUAccelerator):
        skip_nvml_probe()
    threads = ckpt_threads if isinstance(ckpt_threads, int) else None
    return Built(cfg, task, datamodule, model, trainer, ckpt_path, threads)


def skip_nvml_probe() -> None:
    """Make a CPU run's `torch.cuda.is_available()` the cached runtime count, not an NVML probe.

    Importing Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (so a check does not initialise
    CUDA before a fork). Until CUDA is initialised torch then re-opens the NVML library on
    every call, and every optimizer step calls it (torch.optim's graph-capture check): 0.3 ms
    a step, 2% of the default shape's step on one core (py-spy: CDLL.__init__ under
    Optimizer._accelerator_graph_capture_health_check). A CPU run forks nothing that uses CUDA.
    """
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"


def build_model(cfg: DictConfig, task: Task) -> LitTransformerLM:
    """The LightningModule and its network, sized for `task`'s vocabulary and sequences."""
    positions = positional_table_length(cfg, task.seq_len)
    net = {"vocab_size": task.vocab_size, "max_seq_len": positions}
    return instantiate(cfg.model, "model", net=net)


def positional_table_length(cfg: DictConfig, seq_len: int) -> Any:
    """The positional table's length: `model.net.max_seq_len`, or the task's when null."""
    table = cfg.model.net.get("max_seq_len")
    if table is None:
        return seq_len
    if is_int(table) and 0 < table < seq_len:
        raise ConfigError(
            f"model.net.max_seq_len={table} is shorter than the task's sequences "
            f"({cfg.task._target_.rsplit('.', 1)[-1]}: {seq_len} tokens), so positions "
            f"{table}..{seq_len - 1} would have no row in the positional table. Allowed: null "
            f"(the task's length) or an integer >= {seq_len}."
        )
    return table  # other bad values are refused by the model itself


def _check_split(data_cfg: DictConfig, world_size: int) -> None:
    """Each of `world_size` processes takes an equal share of every batch."""
    for key in ("batch_size", "val_size"):
        value = data_cfg.get(key)
        if world_size > 1 and value % world_size:
            raise ConfigError(
                f"data.{key}={value} cannot be split evenly over {world_size} processes "
                f"(trainer.devices x trainer.num_nodes): each takes an equal share of every "
                f"batch. Allowed: a multiple of {world_size}."
            )


def resolve_checkpoint(
    cfg: DictConfig, model: L.LightningModule, to_resume: bool = True
) -> str | None:
    """`ckpt_path` as a file that exists, loads safely and fits `model`; or None.

    `to_resume`: training will continue from it, so a run already at max_steps is refused
    (inspect_model.py reads finished runs, so it passes False).
    """
    checked = checked_checkpoint(cfg, model, to_resume)
    return checked[0] if checked is not None else None


def checked_checkpoint(
    cfg: DictConfig, model: L.LightningModule, to_resume: bool = True
) -> tuple[str, dict[str, Any]] | None:
    """resolve_checkpoint's path with the checkpoint it loaded to check it (loaded once)."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None:
        return None
    newest = str(ckpt_path) == "last"
    if newest:
        ckpt_path = find_last_checkpoint(Path(cfg.paths.log_dir), cfg)
        if ckpt_path is None and to_resume:  # nothing to continue: a sweep re-run starts it
            log.info(
                "ckpt_path=last: no checkpoint of this config under %s/; training from step 0",
                cfg.paths.log_dir,
            )
            return None
        if ckpt_path is None:
            raise ConfigError(
                f"ckpt_path=last found no checkpoints/last.ckpt under {cfg.paths.log_dir}/ "
                "from a run with this same config (only ckpt_path and paths may differ). "
                "Give the checkpoint's path instead, or leave ckpt_path unset."
            )
    try:
        checkpoint = load_checkpoint(ckpt_path)
        if newest and to_resume:
            if checkpoint["global_step"] >= cfg.trainer.max_steps:
                # stopped after its last step but before its record: trained anew
                log.info(
                    "ckpt_path=last: %s is at the last step but its run never finished; "
                    "training from step 0",
                    ckpt_path,
                )
                return None
            log.info("ckpt_path=last: resuming from %s", ckpt_path)
        check_same_model(checkpoint, model_config(cfg), ckpt_path)
        check_fits(checkpoint, model, ckpt_path)
        if to_resume:
            check_not_finished(checkpoint, cfg.trainer.max_steps, ckpt_path)
    except CheckpointError as err:
        raise ConfigError(str(err)) from None
    return str(ckpt_path), checkpoint
