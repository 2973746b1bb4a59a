"""PrintSamples: a few validation examples and the model's answers, printed at the end."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from src.data.tasks import Batch, Task
from src.validation import check_positive_int


def format_samples(task: Task, batch: Batch, preds: torch.Tensor) -> list[str]:
    """One line per example: prompt (answers blanked) -> expected -> predicted."""
    lines = []
    for inputs, targets, mask, pred in zip(*batch, preds):
        sequence = torch.cat([inputs, targets[-1:]]).tolist()  # the full sequence (T+1,)
        answer_at = set((mask.nonzero().flatten() + 1).tolist())
        prompt = " ".join("_" if i in answer_at else task.render(t) for i, t in enumerate(sequence))
        expected = " ".join(task.render(t) for t in targets[mask].tolist())
        predicted = " ".join(task.render(t) for t in pred[mask].tolist())
        mark = "ok " if expected == predicted else "XX "
        lines.append(f"{mark} {prompt}  ->  {expected}  ->  {predicted}")
    return lines


class PrintSamples(L.Callback):
    """At the end of training, print a few validation examples and the model's answers."""

    def __init__(self, num_examples: int = 4) -> None:
        check_positive_int("num_examples", num_examples)
        self.num_examples = num_examples

    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        batch = datamodule.probe_batch(self.num_examples)
        pl_module.eval()
        with torch.no_grad():
            preds = pl_module(batch.inputs.to(pl_module.device)).argmax(-1).cpu()
        print(f"\nSamples from the validation set ({datamodule.task.name}; teacher-forced):")
        print("     prompt (answers as _)  ->  expected  ->  predicted")
        for line in format_samples(datamodule.task, batch, preds):
            print("  " + line)
