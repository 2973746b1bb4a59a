"""Nothing is lost: crash-safe checkpoints, exact resume after SIGKILL, the non-finite guard,
identical runs, and run folders that never collide."""

import json
import logging
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from src.preflight.checks import ConfigError
from src.runs.folders import find_last_checkpoint
from src.training.checkpointing import AtomicCheckpointIO, load_checkpoint
from src.training.run import TrainingDiverged, train
from tests.helpers import PYTHON, TINY, TRAIN_SCRIPT, run_sweep

STEPS_12 = ["trainer.max_steps=12", "trainer.val_check_interval=4"]
# An oversized scale and learning rate: non-finite within a few steps. Which step depends on
# the CPU's float rounding and thread count, so tests find it by replaying without the guard.
# Validation (so a checkpoint) after every step, so one exists before the bad step.
DIVERGING = ["scale=10000", "model.warmup_steps=1", "trainer.max_steps=30"]
DIVERGING += ["trainer.val_check_interval=1"]
HIGH_LR = "model.lr=100"


# --- crash-safe saving -------------------------------------------------------------------


def test_a_save_cut_short_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 4}, path)

    def killed_halfway(obj, file):  # what a kill during the write leaves: half a file
        file.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr("src.training.checkpointing.torch.save", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 8}, path)

    previous = load_checkpoint(path)
    assert previous["global_step"] == 4 and torch.equal(previous["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no half file left


@pytest.mark.slow
def test_sigkill_during_a_save_then_ckpt_path_last_resumes_exactly(compose_cfg, tmp_path, caplog):
    """A real process is SIGKILLed while writing its second checkpoint (step 8); the first
    (step 4) still loads, and `ckpt_path=last` resumes from it to the uninterrupted result."""
    reference = train(compose_cfg(*TINY, *STEPS_12))

    logs = tmp_path / "logs"
    marker = tmp_path / "saving_step_8"
    overrides = [*TINY, *STEPS_12, f"paths.log_dir={logs}"]
    # Same script, same config; only os.replace of the second last.ckpt blocks until killed.
    hang_in_second_save = f"""
import os, runpy, sys, time
import src.training.checkpointing as ckpt
real_replace, saves = os.replace, []
def replace(src, dst):
    if str(dst).endswith("last.ckpt"):
        saves.append(dst)
        if len(saves) == 2:
            open({str(marker)!r}, "w").close()
            time.sleep(600)
    real_replace(src, dst)
ckpt.os = type(os)("os_with_hanging_replace")
ckpt.os.__dict__.update(os.__dict__, replace=replace)
sys.argv = [{str(TRAIN_SCRIPT)!r}, *{overrides!r}]
runpy.run_path({str(TRAIN_SCRIPT)!r}, run_name="__main__")
"""
    child = subprocess.Popen(
        [PYTHON, "-c", hang_in_second_save], cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert child.poll() is None, child.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the child never reached its second save"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL

    (killed,) = (logs / "runs").iterdir()
    # written at the start and never replaced: a killed run, not one that never started
    assert json.loads((killed / "metrics.json").read_text()) == {"status": "running"}
    left = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert "last.ckpt.tmp" in left  # the save that was cut short
    assert load_checkpoint(killed / "checkpoints" / "last.ckpt")["global_step"] == 4

    resumed = tmp_path / "resumed"  # a folder of its own; in this process, to save a start-up
    cfg = compose_cfg(*overrides, "ckpt_path=last")
    cfg.paths.output_dir = str(resumed)
    with caplog.at_level(logging.INFO, logger="src"):
        train(cfg)
    assert f"resuming from {killed / 'checkpoints' / 'last.ckpt'}" in caplog.text
    result = json.loads((resumed / "metrics.json").read_text())
    assert result["status"] == "finished" and result["step"] == 12
    assert result["metrics"].keys() == reference["metrics"].keys()
    for key, value in reference["metrics"].items():
        assert result["metrics"][key] == pytest.approx(value, abs=1e-6), key
    assert load_checkpoint(killed / "checkpoints" / "last.ckpt")["global_step"] == 4  # kept


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
    from omegaconf import OmegaConf

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


# --- determinism --------------------------------------------------------------------------


def test_two_identical_runs_write_identical_metrics_json(compose_cfg, tmp_path):
    texts = []
    for name in ("one", "two"):
        cfg = compose_cfg(*TINY, "heads=2")
        cfg.paths.output_dir = str(tmp_path / name)
        train(cfg)
        texts.append((tmp_path / name / "metrics.json").read_text())
    assert texts[0] == texts[1]
    assert "wall_time" not in texts[0]


@pytest.mark.slow
def test_two_runs_in_the_same_folder_slot_get_separate_folders_and_equal_results(tmp_path):
    """Two processes at once, both asking for the same run folder (as two runs started in
    the same second do): each gets its own, and their metrics.json are byte-identical."""
    same_slot = f"hydra.run.dir=${{unique_dir:{tmp_path / 'runs' / 'same'}}}"
    procs = [
        subprocess.Popen(
            [PYTHON, str(TRAIN_SCRIPT), *TINY, same_slot],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert folders == ["same", "same_2"]
    texts = [(tmp_path / "runs" / f / "metrics.json").read_text() for f in folders]
    assert texts[0] == texts[1]


def test_unique_dir_gives_racing_processes_distinct_folders(tmp_path):
    wanted = str(tmp_path / "2026-01-01_00-00-00_default")
    claim = f"from src.runs.folders import unique_dir; print(unique_dir({wanted!r}))"
    racers = [  # light processes (omegaconf only), started together
        subprocess.Popen([PYTHON, "-c", claim], stdout=subprocess.PIPE, text=True) for _ in range(6)
    ]
    claimed = sorted(racer.communicate(timeout=120)[0].strip() for racer in racers)
    assert len(set(claimed)) == 6 and all(Path(c).is_dir() for c in claimed)
    assert wanted in claimed


# --- the non-finite guard ------------------------------------------------------------------


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
    from omegaconf import open_dict

    cfg = compose_cfg(*overrides, "~callbacks.non_finite_guard")
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder)
    recorder = _FirstNonFinite()
    from src.training.build import build

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
    import runpy
    import sys

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


@pytest.mark.slow
def test_a_sweep_goes_on_past_a_diverged_job_and_compare_lists_it(tmp_path):
    from src.analysis.compare import compare
    from src.analysis.runs import load_runs

    sweep = tmp_path / "sweep"
    proc = run_sweep(sweep, *TINY, *DIVERGING, "model.lr=100,0.003", cwd=tmp_path)
    assert proc.returncode != 0  # the sweep reports its failure...
    runs = load_runs(sweep)  # ...after running every job
    assert {r.label: r.status for r in runs} == {
        "model.lr=100": "diverged",
        "model.lr=0.003": "finished",
    }
    (diverged,) = [r for r in runs if r.status == "diverged"]
    failed_step = json.loads((diverged.path / "metrics.json").read_text())["failed_step"]
    assert f"training diverged at step {failed_step}:" in proc.stderr
    compare(sweep)
    summary = (sweep / "summary.md").read_text()
    assert "1/2 runs finished" in summary and "(diverged: 1)" in summary


# --- records of every run ------------------------------------------------------------------


def test_compare_lists_refused_and_running_runs(tmp_path):
    """A refused run's folder and a killed one's ("running" since its start) are listed."""
    from src.analysis.runs import load_runs

    for name, record in [
        ("0_seed=0", {"status": "finished", "step": 6, "metrics": {"val/loss": 1.0}}),
        ("1_seed=-1", {"status": "refused", "error": "seed=-1 is not allowed"}),
        ("2_seed=2", {"status": "running"}),
    ]:
        run = tmp_path / name
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- {name.split('_', 1)[1]}\n")
        seed = name.split("=", 1)[1]
        config = f"seed: {seed}\ntask:\n  _target_: src.data.tasks.Sort\n"
        (run / ".hydra" / "config.yaml").write_text(config)
        (run / "metrics.json").write_text(json.dumps(record))
    assert [(r.seed, r.status) for r in load_runs(tmp_path)] == [
        ("0", "finished"),
        ("-1", "refused"),
        ("2", "running"),
    ]


def test_metrics_json_says_running_while_training(compose_cfg, tmp_path):
    seen = []

    class _Look(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            seen.append(json.loads((tmp_path / "metrics.json").read_text())["status"])

    assert train(compose_cfg(*TINY), extra_callbacks=[_Look()])["status"] == "finished"
    assert set(seen) == {"running"}
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, through a renamed file
