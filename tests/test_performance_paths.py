"""The accelerator switches work (speed itself is scripts/bench.py's job, never a test's)."""

import json

import pytest
import torch

from src.lit_module import adamw_with_schedule
from src.modules import TransformerLM
from src.train import train
from tests.conftest import TINY


def test_bf16_mixed_precision_trains(compose_cfg, tmp_path):
    result = train(compose_cfg("trainer.precision=bf16-mixed", *TINY))
    assert result["status"] == "finished" and result["step"] == 6
    assert all(torch.isfinite(torch.tensor(v)) for v in result["metrics"].values())


@pytest.mark.slow
def test_compile_true_trains_and_saves_a_plain_checkpoint(compose_cfg, tmp_path):
    # without the diagnostics' explicit-path graphs, which only make compiling slower
    train(compose_cfg("compile=true", "~callbacks.attention_diagnostics", *TINY))
    assert json.loads((tmp_path / "metrics.json").read_text())["step"] == 6
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all("_orig_mod" not in key for key in state)  # loads into an uncompiled model


def test_the_bench_loop_uses_the_trainers_optimizer_and_schedule():
    net = TransformerLM(vocab_size=5, max_seq_len=4, d_model=8, heads=2)
    optimizer, scheduler = adamw_with_schedule(
        net, 100, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.98), warmup_steps=10, min_lr_ratio=0.1
    )
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)  # warm-up step 1 of 10
