"""The optimizer the trainer and bench.py's plain loop share: AdamW with a warm-up and a
cosine schedule."""

import math

import pytest
import torch
from torch import nn

from src.training.lit_module import adamw_with_schedule


def test_adamw_decays_matrices_only_and_warms_up_then_follows_the_cosine():
    """The optimizer the trainer and bench.py's plain loop share: weight decay pulls every
    matrix (embeddings included) towards 0 but never a LayerNorm gain or a bias, and the
    learning rate follows the schedule written out here by hand."""
    net = nn.Sequential(nn.Embedding(5, 8), nn.LayerNorm(8), nn.Linear(8, 8, bias=True))
    lr, decay, warmup, total, floor = 1e-2, 0.1, 4, 12, 0.1
    hparams = dict(lr=lr, weight_decay=decay, betas=(0.9, 0.98), min_lr_ratio=floor)
    optimizer, scheduler = adamw_with_schedule(net, total, warmup_steps=warmup, **hparams)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    for p in net.parameters():  # no gradient: Adam's own step is 0, only the decay acts
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for name, p in net.named_parameters():
        shrunk = before[name] * (1 - lr / warmup * decay)  # step 0 runs at lr/warmup
        torch.testing.assert_close(p.detach(), shrunk if p.dim() >= 2 else before[name])

    def by_hand(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        progress = (step - warmup) / (total - warmup)
        return lr * (floor + (1 - floor) * (1 + math.cos(math.pi * progress)) / 2)

    seen = []
    for _ in range(total + 1):
        seen.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    assert seen == pytest.approx([by_hand(s) for s in range(total + 1)])
    assert seen[total] == pytest.approx(lr * floor)
