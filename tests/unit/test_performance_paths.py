"""The accelerator switches work (speed itself is scripts/bench.py's job, never a test's)."""

import json
import math

import pytest
import torch
from torch import nn

from src.training.lit_module import adamw_with_schedule
from src.training.run import train
from tests.helpers import TINY


def test_bf16_mixed_precision_trains(compose_cfg, tmp_path):
    result = train(compose_cfg("trainer.precision=bf16-mixed", *TINY))
    assert result["status"] == "finished" and result["step"] == 6
    assert all(torch.isfinite(torch.tensor(v)) for v in result["metrics"].values())


@pytest.mark.slow
def test_compile_true_compiles_the_training_step_once_and_saves_a_plain_checkpoint(
    compose_cfg, tmp_path
):
    """compile=true compiles the training forward once, however long the run (compiling
    the LightningModule recompiled training_step at every step, since it reads the step
    counter, until torch gave up after 8). Graphs for validation and the end-of-run views
    (no grad, head masks) come after training and are counted separately."""
    import lightning as L
    from torch._dynamo.utils import counters

    graphs_after_step = []

    class CountGraphs(L.Callback):
        def on_train_batch_end(self, *args, **kwargs):
            graphs_after_step.append(counters["stats"]["unique_graphs"])

    torch._dynamo.reset()
    counters.clear()
    # without the diagnostics' explicit-path graphs, which only make compiling slower
    cfg = compose_cfg(
        "compile=true", "~callbacks.attention_diagnostics", *TINY, "trainer.max_steps=12"
    )
    train(cfg, extra_callbacks=[CountGraphs()])
    assert json.loads((tmp_path / "metrics.json").read_text())["step"] == 12
    # one graph for steps 1-4; validation after step 4 (and 8) adds its own once
    assert graphs_after_step[:4] == [1] * 4, graphs_after_step
    assert graphs_after_step[8:] == [graphs_after_step[8]] * 4, graphs_after_step
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all("_orig_mod" not in key for key in state)  # loads into an uncompiled model


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
