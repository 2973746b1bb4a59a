"""NonFiniteGuard: stop at the first NaN/inf loss or gradient, and say what likely caused it."""

from __future__ import annotations

import math

import lightning as L
import torch

from src.modules.transformer import TransformerLM


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN/inf at `step` (1-based), whose update was refused.

    One exception from the guard to the script: train() completes its message with what
    became of the run (`add_outcome`), records `diverged` in metrics.json and re-raises it;
    scripts/train.py exits with code 3.
    """

    status = "diverged"  # what metrics.json records; scripts/train.py's exit code follows it

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step

    def add_outcome(self, outcome: str) -> None:
        """Append what is known only after the run stopped (its last checkpoint)."""
        self.args = (f"{self.args[0]} {outcome}",)


class NonFiniteGuard(L.Callback):
    """Stop at the first step whose loss or gradient is NaN or inf, before its update.

    Raising before `optimizer.step` keeps the weights (and every checkpoint already
    written) finite; the message names the step and what in the model makes it likely.
    One host-device sync a step: the loss is kept from `on_before_backward` and checked
    together with the gradient norm.
    """

    def __init__(self) -> None:
        self._loss: torch.Tensor | None = None

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # The optimizer's own flat list: walking the module tree (metric objects included)
        # every step cost more than the norm itself.
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        grad_norm_total = _total_norm(grads)
        loss = self._loss if self._loss is not None else grad_norm_total.new_zeros(())
        values = torch.stack([loss.float(), grad_norm_total.float()]).cpu()
        if bool(torch.isfinite(values).all()):
            return
        step = trainer.global_step + 1
        loss_value, grad_value = values.tolist()
        what = (
            f"the loss is {loss_value}"
            if not math.isfinite(loss_value)
            else f"the gradient norm is {grad_value} (the loss was {loss_value:.4g})"
        )
        lr = optimizer.param_groups[0]["lr"]
        raise TrainingDiverged(
            f"training diverged at step {step}: {what}. Likely cause: "
            f"{likely_causes(pl_module.net, lr, str(trainer.precision))}",
            step,
        )


def _total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: batched (foreach) kernels
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))


def likely_causes(net: TransformerLM, lr: float, precision: str) -> str:
    """What in this model and optimiser most often makes training blow up, worst first."""
    causes = []
    for attn in net.attention_layers():
        standard = 1.0 / math.sqrt(attn.head_dim)
        if attn.scale > standard * 1.0001:
            causes.append(
                f"oversized attention logits: q.k is multiplied by {attn.scale:g} where "
                f"1/sqrt(d_k) = {standard:.3g} ({attn.scale / standard:,.0f}x larger), so the "
                "softmax saturates and its logits grow without bound (scale=true restores "
                "1/sqrt(d_k))"
            )
            break
    if lr > 1e-2:
        causes.append(
            f"the learning rate: {lr:.3g} at this step is high for AdamW here (try 10x lower)"
        )
    if precision.startswith("16"):
        causes.append(f"float16 overflow (precision={precision}; bf16-mixed has fp32's range)")
    if not causes:
        causes.append(
            f"no single setting stands out (learning rate {lr:.3g}); lower the learning rate "
            "or clip gradients (trainer.gradient_clip_val=1.0)"
        )
    return "; and ".join(causes) + "."
