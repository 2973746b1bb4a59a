"""Resuming from a checkpoint continues the same run: same batches, optimizer and RNG state."""

import json

import lightning as L
import pytest
import torch
from omegaconf import open_dict

from src.training.run import train
from tests.helpers import TINY

STEPS = ["trainer.max_steps=8", "trainer.val_check_interval=4"]


class _StopAt(L.Callback):
    """Ends fit after `step` steps, as an interruption would (Lightning validates and saves)."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


class _DrawRandom(L.Callback):
    """Draws from torch's generator every step, as dropout would, and records the draws."""

    def __init__(self) -> None:
        self.draws: dict[int, float] = {}

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.draws[trainer.global_step] = torch.rand(()).item()


def _in(cfg, folder):
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder)
    return cfg


def test_stop_at_half_then_resume_matches_an_uninterrupted_run(compose_cfg, tmp_path):
    full_draws = _DrawRandom()
    full = train(compose_cfg(*TINY, *STEPS), extra_callbacks=[full_draws])

    first = _in(compose_cfg(*TINY, *STEPS), tmp_path / "first")
    # draws as the full run did
    assert train(first, extra_callbacks=[_DrawRandom(), _StopAt(4)])["step"] == 4

    resumed_draws = _DrawRandom()
    checkpoint = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed = _in(compose_cfg(*TINY, *STEPS, f"ckpt_path={checkpoint}"), tmp_path / "resumed")
    result = train(resumed, extra_callbacks=[resumed_draws])

    assert result["step"] == 8
    for key, value in full["metrics"].items():
        assert result["metrics"][key] == pytest.approx(value, abs=1e-6), key
    saved = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert saved == result
    # the random stream continues where it stopped, as it would have without the stop
    assert resumed_draws.draws == {s: full_draws.draws[s] for s in (4, 5, 6, 7)}
