"""`train(cfg)`: config -> task, datamodule, model, trainer -> fit -> metrics.json.

Everything is built (and so every config value, the checkpoint to resume from included,
checked) before the first training step.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.errors import InstantiationException
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from src.analysis.metric_names import FINAL_METRICS, HPARAMS_PREFIX
from src.analysis.tensorboard_views import hparams_for_tensorboard, hparams_summaries
from src.data.datamodule import TaskDataModule
from src.data.tasks import Task
from src.preflight.checks import ConfigError, check_values, model_config, name_config_keys
from src.preflight.devices import check_devices
from src.preflight.memory import check_memory, estimate_memory
from src.preflight.threads import available_cpus, thread_policy
from src.runs.folders import find_last_checkpoint
from src.runs.records import find_finished_run
from src.training.callbacks.guard import TrainingDiverged
from src.training.checkpointing import (
    CheckpointError,
    CheckpointWriteError,
    RecordModelConfig,
    check_fits,
    check_not_finished,
    check_same_model,
    disk_space,
    load_checkpoint,
    step_of,
)
from src.training.distributed import extra_ranks
from src.training.lit_module import LitTransformerLM
from src.training.progress import (
    ProgressLog,
    StepProgressBar,
    SummaryWithoutFlops,
    file_log,
    silence_litlogger_advert,
)
from src.validation import is_int

__all__ = [
    "Built",
    "ConfigError",
    "RunStopped",
    "TrainingDiverged",
    "TrainingFailed",
    "build",
    "train",
]

# Lightning's own use of a deprecated torch API; nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# A resumed run writes into its own new folder by design, never into the one it resumes.
warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
silence_litlogger_advert()

log = logging.getLogger(__name__)


def _instantiate(node: DictConfig, key: str, **kwargs: Any) -> Any:
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


def build(cfg: DictConfig, extra_callbacks: Sequence[L.Callback] = ()) -> Built:
    """Check the config, seed, and instantiate every part of a run, in data-flow order.

    The seed is set only once the values are checked (a bad seed is refused, not passed to
    numpy), and before the model's weights are drawn. The memory estimate comes right after
    the task (which only stores its sizes), so a run that cannot fit is refused before
    anything large is allocated. `extra_callbacks` join the config's (tests, benchmarks).
    """
    check_values(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = _instantiate(cfg.task, "task")
    estimate = estimate_memory(cfg, task.vocab_size, task.seq_len)
    check_memory(cfg, estimate)
    if estimate is not None:
        log.info("%s", estimate.summary())
    datamodule = _instantiate(cfg.data, "data", task=task)
    positions = _positional_table_length(cfg, task.seq_len)
    model = _instantiate(
        cfg.model, "model", net={"vocab_size": task.vocab_size, "max_seq_len": positions}
    )
    ckpt_path = resolve_checkpoint(cfg, model)  # refused before the trainer is even built
    callbacks = [_instantiate(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items()]
    callbacks += [RecordModelConfig(model_config(cfg)), ProgressLog()]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(StepProgressBar())
    if cfg.trainer.get("enable_model_summary", True):
        callbacks.append(SummaryWithoutFlops())
    callbacks += extra_callbacks
    loggers = [_instantiate(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items()]
    check_devices(cfg.trainer)
    trainer = _instantiate(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    _check_split(cfg.data, trainer.world_size)
    return Built(cfg, task, datamodule, model, trainer, ckpt_path)


def _positional_table_length(cfg: DictConfig, seq_len: int) -> Any:
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
    return str(ckpt_path)


class TrainingFailed(RuntimeError):
    """An error after the start (a full disk, a bug, a library's error): metrics.json records
    it as `failed` with the error and the last intact checkpoint; exit code 4."""

    status = "failed"


# What stops a run with one paragraph, a record in metrics.json and an exit code of its own.
RunStopped = (ConfigError, TrainingDiverged, TrainingFailed)


def train(
    cfg: DictConfig,
    threads: int | None = None,
    extra_callbacks: Sequence[L.Callback] = (),
) -> dict[str, Any]:
    """Train one model as `cfg` says; returns what it writes to `metrics.json`.

    metrics.json holds only what the config and seed determine, so two runs of the same
    config give the same file (the wall time goes to the log instead). `threads` is this
    job's share of the CPU cores when sweep jobs run side by side; the config's `threads`
    wins over it, and src.preflight.threads.thread_policy decides the rest. `extra_callbacks` are
    added to the config's (see `build`). A run that stops early raises one of RunStopped
    once metrics.json records it: refused, diverged or failed.
    """
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    write_metrics(output_dir, {"status": "running"})  # a killed run is told from one never run
    try:
        policy = thread_policy(cfg.get("threads"), threads, available_cpus(), os.environ)
        if policy.threads is not None:
            torch.set_num_threads(policy.threads)
        log.info("torch threads: %d (%s)", torch.get_num_threads(), policy.why)
        if (copied := _copy_finished_run(cfg, output_dir)) is not None:
            return copied
        built = build(cfg, extra_callbacks)
    except ConfigError as err:
        write_metrics(output_dir, {"status": "refused", "error": str(err)})
        file_log.error("refused before training: %s", err)
        raise
    trainer, model, datamodule = built.trainer, built.model, built.datamodule

    last = output_dir / "checkpoints" / "last.ckpt"  # what a stopped run names as intact
    failure: TrainingDiverged | TrainingFailed | None = None
    try:
        if cfg.get("compile"):
            # The network only, in place: its state_dict keeps its keys, and training_step
            # (which reads the step counter, a new Python int each step) stays eager.
            # Compiling the LightningModule compiled training_step too and recompiled it
            # every step.
            model.net.compile()
        with extra_ranks(trainer):  # trainer=ddp: ranks 1..N-1 run this job (distributed.py)
            trainer.fit(model, datamodule=datamodule, ckpt_path=built.ckpt_path)
        result = {"status": "finished", "step": trainer.global_step}
    except TrainingDiverged as err:  # raised by NonFiniteGuard
        failure = err
        result = {"status": "diverged", "step": trainer.global_step, "failed_step": err.step}
    except Exception as err:  # anything else after the start: recorded, not mistaken for a kill
        file_log.exception("training failed at step %d", trainer.global_step)
        failure = TrainingFailed(
            f"training failed at step {trainer.global_step}: {_what_failed(err, output_dir)}. "
            f"The run stopped; {_kept(last)}; {output_dir / 'metrics.json'} records it "
            "(train.log: details)."
        )
        result = {"status": "failed", "step": trainer.global_step}
    if built.ckpt_path is not None:
        result["resumed_from"] = str(Path(built.ckpt_path).resolve())  # compare follows it

    final = {
        k: float(trainer.callback_metrics[k])
        for k in FINAL_METRICS
        if k in trainer.callback_metrics
    }
    result["metrics"] = final
    if failure is not None:
        if isinstance(failure, TrainingDiverged):
            failure.add_outcome(f"The run stopped before that update; {_kept(last)}.")
        result["error"] = str(failure)
        result["last_checkpoint"] = str(last) if last.is_file() else None
    if trainer.is_global_zero:
        try:
            _log_hparams(trainer, cfg, built, result)
        except Exception:  # a full disk may refuse the events too; the record comes first
            if failure is None:
                raise
            file_log.exception("the hparams summary could not be written")
        write_metrics(output_dir, result)
        log.info("%s after %.1f s: %s", result["status"], time.perf_counter() - started, output_dir)
    if failure is not None:
        raise failure
    return result


def _log_hparams(trainer: L.Trainer, cfg: DictConfig, built: Built, result: dict) -> None:
    """The hparams tab: what the net was built with; its metrics are the val/* curves' ends."""
    hparams = hparams_for_tensorboard(cfg, built.model.net.config, built.task.name)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            for summary in hparams_summaries(hparams, result["status"]):
                logger.experiment._get_file_writer().add_summary(summary)
        else:
            metrics = {HPARAMS_PREFIX + k: v for k, v in result["metrics"].items()}
            logger.log_hyperparams(hparams, metrics=metrics)
        logger.finalize("success" if result["status"] == "finished" else "failed")


def _kept(last: Path) -> str:
    return (
        f"its last checkpoint, {last} (step {step_of(last)}), is untouched"
        if last.is_file()
        else "no checkpoint had been written yet"
    )


def _what_failed(err: BaseException, output_dir: Path) -> str:
    """One line for an unexpected error: its own words, with the type where they are vague;
    a full disk with the file being written, if known, and the free space."""
    if isinstance(err, CheckpointWriteError):
        return str(err)
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        writing = f"writing {err.filename} failed: " if err.filename else ""
        return f"{writing}the disk is full ({disk_space(output_dir)})"
    return f"{type(err).__name__}: {err}"


def _copy_finished_run(cfg: DictConfig, output_dir: Path) -> dict[str, Any] | None:
    """With ckpt_path=last: the record of a run of this same config that already finished,
    copied here (pointing to it) instead of training again; None if there is none.

    This is what lets an interrupted sweep be finished by re-running its command with
    `ckpt_path=last`: finished jobs are copied, killed ones resume, the rest start.
    """
    if str(cfg.get("ckpt_path")) != "last":
        return None
    found = find_finished_run(Path(cfg.paths.log_dir), cfg)
    if found is None:
        return None
    original, record = found
    copied = {k: v for k, v in record.items() if k != "copied_from"}
    copied["copied_from"] = str(original.resolve())  # compare reads its curves there
    write_metrics(output_dir, copied)
    log.info("ckpt_path=last: this config already finished in %s; its record is copied", original)
    return copied


def write_metrics(output_dir: Path, result: dict[str, Any]) -> None:
    """metrics.json, replaced atomically (a reader never sees half a file); rank 0 only.

    On a full disk the new file cannot be written, so the record is written over the old one
    in place, into the space that file already holds: the outcome is recorded all the same.
    """
    if rank_zero_only.rank != 0:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    partial, record = output_dir / "metrics.json.tmp", output_dir / "metrics.json"
    try:
        partial.write_text(text)
        os.replace(partial, record)
    except OSError as err:
        partial.unlink(missing_ok=True)
        if err.errno != errno.ENOSPC or not record.is_file():
            raise
        with open(record, "r+") as file:
            file.write(text)
            file.truncate()
