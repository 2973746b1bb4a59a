"""The LightningModule: masked next-token loss, AdamW with warm-up + cosine, metrics."""

from __future__ import annotations

import math
import time

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassExactMatch
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_exact_match

from src.analysis import metric_names as names
from src.data.tasks import Batch
from src.modules.generation import greedy_generate
from src.modules.transformer import IGNORE_INDEX, masked_cross_entropy
from src.validation import check_positive_number


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up to 1, then cosine decay to `min_ratio` at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def log10_loss(loss: Tensor) -> Tensor:
    """log10 of a loss for TensorBoard's linear axes (metric_names.TRAIN_LOSS_LOG10); a loss
    of exactly 0 is drawn at log10(LOSS_FLOOR) instead of -inf."""
    return loss.clamp_min(names.LOSS_FLOOR).log10()


class LitTransformerLM(L.LightningModule):
    """Trains any next-token `net` whose forward returns (logits, maps) on task batches."""

    def __init__(
        self,
        net: nn.Module,
        lr: float = 3e-3,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.98),
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
    ) -> None:
        super().__init__()
        check_positive_number("lr", lr)
        self.save_hyperparameters(ignore=["net"], logger=False)
        self.net = net
        vocab = net.lm_head.out_features
        metric_args = {"num_classes": vocab, "ignore_index": IGNORE_INDEX, "validate_args": False}
        self._metric_args = metric_args
        # Validation accumulates over batches in metric objects; training logs one batch's
        # value with the functional form (no state to update, compute and reset each time).
        self.val_acc = MulticlassAccuracy(average="micro", **metric_args)
        self.val_exact = MulticlassExactMatch(**metric_args)
        self.val_gen_acc = MulticlassAccuracy(average="micro", **metric_args)  # free-running
        self.val_gen_exact = MulticlassExactMatch(**metric_args)
        self.val_loss_mean = MeanMetric()  # val/loss as Lightning averages it, for its log10
        self._rng_to_restore: dict | None = None  # set by on_load_checkpoint
        self.generation_s = 0.0  # wall time spent generating in validation (timing.PhaseTimes)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.net(inputs)[0]

    @staticmethod
    def _scored(logits: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        preds = logits.argmax(dim=-1)  # (B, T), teacher-forced predictions
        targets = batch.targets.masked_fill(~batch.loss_mask, IGNORE_INDEX)
        return preds, targets

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        logits = self(batch.inputs)  # (B, T, vocab)
        loss = masked_cross_entropy(logits, batch.targets, batch.loss_mask)
        # The logger writes every `log_every_n_steps`, and each `self.log` call costs about as
        # much as a tenth of a training step here, so log (and score the batch's predictions)
        # only on the steps that are written.
        step = self.global_step + 1  # counting this one
        if step % self.trainer.log_every_n_steps == 0 or step >= self.trainer.max_steps:
            preds, targets = self._scored(logits.detach(), batch)
            # Under DDP each process holds a shard of the batch: average over processes.
            sync = self.trainer.world_size > 1
            self.log(names.TRAIN_LOSS, loss, prog_bar=True, sync_dist=sync)
            mean = self.trainer.strategy.reduce(loss.detach(), reduce_op="mean") if sync else loss
            self.log_dict(
                {
                    names.TRAIN_LOSS_LOG10: log10_loss(mean.detach()),
                    names.TRAIN_ACC: multiclass_accuracy(
                        preds, targets, average="micro", **self._metric_args
                    ),
                    names.TRAIN_EXACT_MATCH: multiclass_exact_match(
                        preds, targets, **self._metric_args
                    ),
                    names.TRAIN_LR: self.optimizers().param_groups[0]["lr"],
                },
                sync_dist=sync,
            )
        return loss

    def on_train_batch_end(self, outputs: Tensor, batch: Batch, batch_idx: int) -> None:
        # Stopping "early" at the last step makes Lightning validate once more, so the final
        # metrics describe the final weights even when max_steps is not a multiple of
        # val_check_interval.
        if self.global_step >= self.trainer.max_steps:
            self.trainer.should_stop = True

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self(batch.inputs)  # (B, T, vocab)
        loss = masked_cross_entropy(logits, batch.targets, batch.loss_mask)
        preds, targets = self._scored(logits, batch)
        self.val_acc.update(preds, targets)
        self.val_exact.update(preds, targets)
        size = batch.inputs.size(0)
        sync = self.trainer.world_size > 1  # the metric objects below sync themselves
        self.log(names.VAL_LOSS, loss, prog_bar=True, batch_size=size, sync_dist=sync)
        self.val_loss_mean.update(loss, weight=size)
        self.log(names.VAL_ACC, self.val_acc, batch_size=size)
        self.log(names.VAL_EXACT_MATCH, self.val_exact, prog_bar=True, batch_size=size)
        # Free-running: each answer token generated from the model's own earlier answers.
        # A causal model generates only the rows teacher forcing gets wrong (greedy_generate).
        shortcut = preds if self.net.config.causal else None
        started = time.perf_counter()
        generated = greedy_generate(
            self.net, batch.inputs, batch.targets, batch.loss_mask, teacher_forced=shortcut
        )
        self.generation_s += time.perf_counter() - started
        self.val_gen_acc.update(generated, targets)  # (B, T); unscored positions ignored
        self.val_gen_exact.update(generated, targets)
        self.log(names.VAL_GEN_ACC, self.val_gen_acc, batch_size=size)
        self.log(names.VAL_GEN_EXACT_MATCH, self.val_gen_exact, batch_size=size)

    def on_validation_epoch_end(self) -> None:
        # log10 of the mean, not the mean of log10s: the log of the val/loss written beside it
        self.log(names.VAL_LOSS_LOG10, log10_loss(self.val_loss_mean.compute()))
        self.val_loss_mean.reset()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Lightning's checkpoint holds weights, optimizer, scheduler and loop state; the
        # random-number state completes an exact resume (batches are keyed by step, so the
        # data need none). Plain tensors, so weights_only loading accepts them.
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Applied at the first batch, not now: Lightning draws from the generator while it
        # sets up the data loaders in between, which the uninterrupted run did before the save.
        self._rng_to_restore = checkpoint.get("rng_states")

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        states, self._rng_to_restore = self._rng_to_restore, None
        if states:
            torch.set_rng_state(states["torch"].cpu())
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])

    def configure_optimizers(self) -> dict:
        optimizer, scheduler = adamw_with_schedule(self.net, self.trainer.max_steps, **self.hparams)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def adamw_with_schedule(
    net: nn.Module,
    total_steps: int,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    warmup_steps: int,
    min_lr_ratio: float,
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with warm-up + cosine; matrices decay, gains and biases do not.

    On CPU, PyTorch's default (per-tensor) AdamW kernel: `fused=True` is ~12% faster per
    step there but rounds differently (1e-7 after a few steps), which would change the
    committed results (scripts/results/). On a GPU, where nothing committed was measured, the
    fused kernel (one launch for all parameters instead of several per tensor).
    """
    params = [p for p in net.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = bool(params) and all(p.is_cuda for p in params)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=fused or None)

    def schedule(step: int) -> float:
        return warmup_cosine(step, warmup_steps, total_steps, min_lr_ratio)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
