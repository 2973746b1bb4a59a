"""`train(cfg)`: config -> task, datamodule, model, trainer -> fit -> metrics.json.

Everything is built (and so every config value, the checkpoint to resume from included,
checked) before the first training step.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from src.analysis.metric_names import FINAL_METRICS, HPARAMS_PREFIX
from src.analysis.tensorboard_views import hparams_for_tensorboard, hparams_summaries
from src.preflight.checks import ConfigError
from src.preflight.threads import available_cpus, measured_policy
from src.runs.folders import trial_name
from src.runs.records import find_finished_run
from src.training.build import Built, build
from src.training.callbacks.guard import TrainingDiverged
from src.training.checkpointing import CheckpointWriteError, disk_space, step_of
from src.training.distributed import extra_ranks
from src.training.lightning_private import tensorboard_file_writer
from src.training.progress import file_log

__all__ = ["ConfigError", "RunStopped", "TrainingDiverged", "TrainingFailed", "train"]

log = logging.getLogger(__name__)

TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before any run sets it: the policy's cap


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
        share = threads if threads is not None else _share_of_processes(cfg.trainer)
        policy = measured_policy(cfg.get("threads"), share, os.environ, TORCH_DEFAULT_THREADS)
        if policy.threads is not None:
            torch.set_num_threads(policy.threads)
        log.info("torch threads: %d (%s)", torch.get_num_threads(), policy.why)
        if (copied := _copy_finished_run(cfg, output_dir)) is not None:
            return copied
        built = build(cfg, extra_callbacks)
        saved = built.ckpt_threads
        if policy.automatic and saved is not None and saved != torch.get_num_threads():
            torch.set_num_threads(saved)
            log.info("torch threads: %d (the run being resumed used %d)", saved, saved)
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
            mode = cfg.compile if isinstance(cfg.compile, str) else None
            model.net.compile(mode=mode)
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
    trial = trial_name(Path(cfg.paths.output_dir), Path(cfg.paths.log_dir))
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            for summary in hparams_summaries(hparams, result["status"], trial):
                tensorboard_file_writer(logger).add_summary(summary)
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


def _share_of_processes(trainer_cfg: DictConfig) -> int | None:
    """Each process's share of the cores when the trainer runs several here (trainer=ddp), so
    the first rank does not take the idle cores the others are about to need; else None."""
    devices = trainer_cfg.get("devices")
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > 1:
        return max(1, available_cpus() // devices)
    return None


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
