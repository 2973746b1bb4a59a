"""Resuming from a checkpoint continues the same run: same batches, same optimizer state."""

import json

import lightning as L
import pytest
from omegaconf import open_dict

from src.train import train
from tests.conftest import TINY

STEPS = ["trainer.max_steps=8", "trainer.val_check_interval=4"]


class _StopAt(L.Callback):
    """Ends fit after `step` steps, as an interruption would (Lightning validates and saves)."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def test_stop_at_half_then_resume_matches_an_uninterrupted_run(compose_cfg, tmp_path, monkeypatch):
    full = train(compose_cfg(*TINY, *STEPS))

    import src.train as train_module

    real_build = train_module.build

    def build_with_stop(cfg):
        parts = real_build(cfg)
        parts["trainer"].callbacks.append(_StopAt(4))
        return parts

    first = compose_cfg(*TINY, *STEPS)
    with open_dict(first):
        first.paths.output_dir = str(tmp_path / "first")
    monkeypatch.setattr(train_module, "build", build_with_stop)
    assert train(first)["step"] == 4
    monkeypatch.setattr(train_module, "build", real_build)

    resumed = compose_cfg(*TINY, *STEPS, f"ckpt_path={tmp_path / 'first/checkpoints/last.ckpt'}")
    with open_dict(resumed):
        resumed.paths.output_dir = str(tmp_path / "resumed")
    result = train(resumed)
    assert result["step"] == 8
    for key, value in full["metrics"].items():
        assert result["metrics"][key] == pytest.approx(value, abs=1e-6), key
    saved = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert saved["metrics"] == result["metrics"]
