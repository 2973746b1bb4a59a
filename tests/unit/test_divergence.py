"""The non-finite guard: a run that diverges stops at its first bad step, keeps its last
checkpoint, and says so, in metrics.json and as the script's exit code 3 (a sweep that goes
on past a diverged job: tests/integration/test_sweep_failures.py)."""

import json
import math
import runpy
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import open_dict

from src.training.build import build
from src.training.checkpointing import load_checkpoint
from src.training.run import TrainingDiverged, train
from tests.helpers import DIVERGING, HIGH_LR, TINY, TRAIN_SCRIPT


class _FirstNonFinite(L.Callback):
    """Records the first step whose loss or total gradient norm is NaN/inf, and stops there."""

    def __init__(self) -> None:
        self.step: int | None = None
        self._loss: torch.Tensor | None = None

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad.detach().flatten() for p in pl_module.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.cat(grads))
        if self.step is None and not (torch.isfinite(self._loss) and torch.isfinite(norm)):
            self.step = trainer.global_step + 1
            trainer.should_stop = True


def first_non_finite_step(compose_cfg, folder: Path, *overrides: str) -> int | None:
    """Replays a run without the guard, on this machine, and returns its first bad step."""
    cfg = compose_cfg(*overrides, "~callbacks.non_finite_guard")
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder)
    recorder = _FirstNonFinite()
    built = build(cfg, extra_callbacks=[recorder])  # seeds, as train() does
    built.trainer.fit(built.model, datamodule=built.datamodule)
    return recorder.step


def test_divergence_stops_at_the_first_bad_step_and_keeps_the_last_checkpoint(
    compose_cfg, tmp_path
):
    first_bad = first_non_finite_step(compose_cfg, tmp_path / "replay", *TINY, *DIVERGING, HIGH_LR)
    assert first_bad is not None and first_bad > 1, first_bad  # diverges, after a checkpoint

    run = tmp_path / "run"
    cfg = compose_cfg(*TINY, *DIVERGING, HIGH_LR)
    cfg.paths.output_dir = str(run)
    with pytest.raises(TrainingDiverged) as info:
        train(cfg)
    message = str(info.value)
    assert f"training diverged at step {first_bad}:" in message
    assert "1/sqrt(d_k)" in message and "learning rate" in message  # the likely causes
    kept = first_bad - 1  # the last validation (after every step) before it
    assert f"(step {kept}), is untouched" in message

    saved = json.loads((run / "metrics.json").read_text())
    assert saved["status"] == "diverged"
    assert (saved["step"], saved["failed_step"]) == (first_bad - 1, first_bad)
    assert saved["error"] == message
    last = load_checkpoint(saved["last_checkpoint"])
    assert last["global_step"] == kept < first_bad  # older than the bad step
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())
    # the guard refused the bad step's update: the weights in memory are finite too
    assert all(math.isfinite(v) for v in saved["metrics"].values())


class _PoisonAt(L.Callback):
    """Makes the loss NaN from step `step` on, as a numerical bug in the model would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step + 1 == self.step:
            with torch.no_grad():
                pl_module.net.token_embedding.weight[0, 0] = float("nan")


def test_a_nan_loss_is_named_with_its_step(compose_cfg, tmp_path):
    with pytest.raises(TrainingDiverged, match=r"diverged at step 5: the loss is nan") as info:
        train(compose_cfg(*TINY), extra_callbacks=[_PoisonAt(5)])
    assert "no single setting stands out" in str(info.value)
    # one exception from the guard to the caller: the step it names, and the whole message
    # (what became of the checkpoint included) exactly as metrics.json records it
    assert info.value.step == 5 and info.value.__cause__ is None
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "diverged" and saved["failed_step"] == 5
    assert saved["error"] == str(info.value) and "(step 4), is untouched" in saved["error"]


def test_the_script_exits_3_on_divergence_and_records_it(tmp_path, monkeypatch, capsys):
    """Through the script's real entry point, in this process: exit code 3 (2 is a refused
    config), one `error:` paragraph naming the step, and metrics.json saying `diverged`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(TRAIN_SCRIPT), *TINY, *DIVERGING, HIGH_LR])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(TRAIN_SCRIPT), run_name="__main__")
    assert exit_info.value.code == 3
    (record,) = (tmp_path / "logs" / "runs").glob("*/metrics.json")
    saved = json.loads(record.read_text())
    assert saved["status"] == "diverged"
    error = capsys.readouterr().err
    assert f"error: training diverged at step {saved['failed_step']}:" in error
    assert saved["error"] in error and "Traceback" not in error
