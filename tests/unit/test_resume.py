"""Resuming from a checkpoint continues the same run: same batches, optimizer and RNG state;
ckpt_path=last finds the checkpoint (or the finished run) to continue from."""

import json
import os
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from src.preflight.checks import ConfigError
from src.runs.folders import find_last_checkpoint
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


# --- ckpt_path=last -----------------------------------------------------------------------


def _fake_run(log_dir: Path, name: str, config: str, mtime: float | None = None) -> Path:
    run = log_dir / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(config)
    (run / "checkpoints").mkdir()
    checkpoint = run / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes(b"")
    if mtime is not None:
        os.utime(checkpoint, (mtime, mtime))
    return checkpoint


def test_ckpt_path_last_finds_the_newest_run_with_the_same_config(tmp_path):
    cfg = OmegaConf.create({"heads": 2, "ckpt_path": "last", "paths": {"output_dir": "x"}})
    same = "heads: 2\nckpt_path: null\npaths:\n  output_dir: elsewhere\n"
    old = _fake_run(tmp_path, "runs/a", same, mtime=1_000)
    new = _fake_run(tmp_path, "multiruns/b/0_x", same, mtime=2_000)
    _fake_run(tmp_path, "runs/c", "heads: 4\n", mtime=3_000)  # newer, other config
    assert find_last_checkpoint(tmp_path, cfg) == new
    new.unlink()
    assert find_last_checkpoint(tmp_path, cfg) == old
    assert find_last_checkpoint(tmp_path / "runs" / "c", cfg) is None


def test_ckpt_path_last_without_any_checkpoint_trains_from_step_0(compose_cfg, tmp_path):
    """What a sweep re-run needs for its jobs that never started (Lightning's own
    ckpt_path="last" does the same); inspect, which needs weights, still refuses."""
    from src.training.build import resolve_checkpoint

    cfg = compose_cfg(*TINY, "ckpt_path=last", f"paths.log_dir={tmp_path / 'logs'}")
    assert resolve_checkpoint(cfg, model=None) is None
    with pytest.raises(ConfigError, match="ckpt_path=last found no checkpoints/last.ckpt"):
        resolve_checkpoint(cfg, model=None, to_resume=False)


def test_ckpt_path_last_copies_the_record_of_a_finished_run_instead_of_training(
    compose_cfg, tmp_path
):
    logs = tmp_path / "logs"
    first = compose_cfg(*TINY, f"paths.log_dir={logs}")
    with open_dict(first):
        first.paths.output_dir = str(logs / "runs" / "first")
    (logs / "runs" / "first" / ".hydra").mkdir(parents=True)
    OmegaConf.save(first, logs / "runs" / "first" / ".hydra" / "config.yaml")
    original = train(first)

    again = compose_cfg(*TINY, f"paths.log_dir={logs}", "ckpt_path=last")
    with open_dict(again):
        again.paths.output_dir = str(tmp_path / "again")
    copied = train(again)
    assert copied == {**original, "copied_from": str((logs / "runs" / "first").resolve())}
    assert json.loads((tmp_path / "again" / "metrics.json").read_text()) == copied
    assert not (tmp_path / "again" / "checkpoints").exists()  # nothing was trained
