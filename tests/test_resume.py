"""Resuming from a checkpoint continues the same run: same batches, optimizer and RNG state."""

import json

import lightning as L
import pytest
import torch
from omegaconf import open_dict

from src.train import train
from tests.conftest import TINY, add_callbacks

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


def test_stop_at_half_then_resume_matches_an_uninterrupted_run(compose_cfg, tmp_path, monkeypatch):
    full_draws = _DrawRandom()
    add_callbacks(monkeypatch, full_draws)
    full = train(compose_cfg(*TINY, *STEPS))

    add_callbacks(monkeypatch, _DrawRandom(), _StopAt(4))  # draws as the full run did
    assert train(_in(compose_cfg(*TINY, *STEPS), tmp_path / "first"))["step"] == 4

    resumed_draws = _DrawRandom()
    add_callbacks(monkeypatch, resumed_draws)
    checkpoint = tmp_path / "first" / "checkpoints" / "last.ckpt"
    result = train(_in(compose_cfg(*TINY, *STEPS, f"ckpt_path={checkpoint}"), tmp_path / "resumed"))

    assert result["step"] == 8
    for key, value in full["metrics"].items():
        assert result["metrics"][key] == pytest.approx(value, abs=1e-6), key
    saved = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert saved == result
    # the random stream continues where it stopped, as it would have without the stop
    assert resumed_draws.draws == {s: full_draws.draws[s] for s in (4, 5, 6, 7)}
