"""How a run shows its progress: a step bar on the console, step lines in train.log.

Training is step-based (an endless stream, `trainer.max_steps`), so Lightning's epoch bar
reads `Epoch 0/-2` and counts batches of the current fit (`300/149` after a resume); these
count optimizer steps out of max_steps instead. The log lines are for anyone reading
train.log or a batch job's output, where no progress bar is drawn until the end.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, TQDMProgressBar

from src.training.lightning_private import format_summary_table

# Hydra's root logger writes to train.log only; attnlab's own `src` logger also prints.
file_log = logging.getLogger("attnlab.train_log")


class StepProgressBar(TQDMProgressBar):
    """The training bar shows `step/max_steps`, continuing from a resumed step.

    It redraws at most every `min_interval_s` (and at the last step). Lightning's bar
    redraws twice a step (the count, then the postfix), about a tenth of a default step
    on 2 CPU cores (scripts/bench.py, "Lightning gap: the progress bar").
    """

    def __init__(self, min_interval_s: float = 0.2) -> None:
        super().__init__()
        self.min_interval_s = min_interval_s
        self._drawn_at = -math.inf

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resume that restarts mid-epoch (any `ckpt_path` from a step-based run) skips
        # on_train_epoch_start, so the bar is set up here as well as there.
        super().on_train_start(trainer, pl_module)
        self._count_steps(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        super().on_train_epoch_start(trainer)
        self._count_steps(trainer)

    def _count_steps(self, trainer: L.Trainer) -> None:
        bar = self.train_progress_bar
        bar.total = trainer.max_steps
        bar.n = bar.initial = trainer.global_step
        bar.set_description("step")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, now = trainer.global_step, time.perf_counter()
        if step < self.train_progress_bar.total and now - self._drawn_at < self.min_interval_s:
            return
        self._drawn_at = now
        self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        bar = self.train_progress_bar
        if not bar.disable:
            bar.n = step
            bar.refresh()  # one redraw, with the new postfix


class ProgressLog(L.Callback):
    """Every `trainer.log_every_n_steps` (and at the last step): step, loss, lr and it/s."""

    def __init__(self) -> None:
        self._since: tuple[int, float] | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._since = (trainer.global_step, time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % trainer.log_every_n_steps and step < trainer.max_steps:
            return
        if not trainer.is_global_zero:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        loss_value = float(loss) if loss is not None else math.nan
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        then_step, then = self._since or (step, time.perf_counter())
        now = time.perf_counter()
        rate = (step - then_step) / (now - then) if now > then else math.nan
        self._since = (step, now)
        file_log.info(
            "step %d/%d  loss %.4f  lr %.3g  %.1f it/s",
            step,
            trainer.max_steps,
            loss_value,
            lr,
            rate,
        )


class SummaryWithoutFlops(ModelSummary):
    """Lightning's model summary without its FLOPs column and total, which read 0 here
    (Lightning counts FLOPs only for a module with an `example_input_array`)."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        columns = [c for c in summary_data if c[0] != "FLOPs"]
        table = format_summary_table(
            total_parameters,
            trainable_parameters,
            model_size,
            total_training_modes,
            total_flops,
            *columns,
        )
        table = "\n".join(line for line in table.splitlines() if not line.endswith("Total Flops"))
        logging.getLogger("lightning.pytorch.callbacks.model_summary").info("\n" + table)


def keep_background_errors_in_the_log() -> None:
    """A full disk (or any error) in a background thread or a log handler goes to train.log,
    not to the console as a traceback: the run's own outcome is one paragraph on stderr and
    its record in metrics.json. TensorBoard writes its events from such a thread."""
    logging.raiseExceptions = False  # a log line that cannot be written is dropped

    def to_log(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread else "?"
        why = (args.exc_type, args.exc_value, args.exc_traceback)
        file_log.error("background thread %s stopped: %s", name, args.exc_value, exc_info=why)

    threading.excepthook = to_log


class _NoAdvert(logging.Filter):
    """Drops Lightning's litlogger advertisement (a cloud service, nothing to do with a run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def silence_litlogger_advert() -> None:
    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning_utilities.core.rank_zero",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoAdvert) for f in logger.filters):
            logger.addFilter(_NoAdvert())
