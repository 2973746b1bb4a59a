"""Bad input is refused before training, through scripts/train.py's real entry point in this
process: a non-zero exit, one paragraph naming the problem, nothing trained (the same in a
fresh process: tests/integration/test_train_script.py)."""

import runpy
import sys
from pathlib import Path

import pytest
import torch

from src.training.checkpointing import MODEL_CONFIG_KEY
from src.training.run import train
from tests.helpers import TINY, TRAIN_SCRIPT, assert_refused_before_training, compose_config

BAD_INPUTS = [
    (["heads=3"], "heads=3 does not divide model.net.d_model=64"),
    (["heads=3", "model.net.d_model=128"], "heads=3 does not divide model.net.d_model=128"),
    (["heads=0"], "heads=0 is not allowed"),
    (["heads=-1"], "heads=-1 is not allowed"),
    (["scale=abc"], "scale='abc' is not allowed"),
    (['scale="true"'], 'it is the string "true"'),
    (["scale=-1"], "scale=-1 is not allowed"),
    (["scale=0"], "scale=0 is not allowed"),
    (["task=nonsense"], "Could not find 'task/nonsense'"),
    (["model.net.layers=0"], "layers=0 is not allowed"),
    (["model.net.d_model=0"], "d_model=0 is not allowed"),
    (["data.batch_size=0"], "data.batch_size=0 is not allowed"),
    (["task.length=-2"], "task.length=-2 is not allowed"),
    (["task=group_max_sum", "task.D=0"], "task.D=0 is not allowed: it must be a positive integer"),
    (["task=group_max_sum", "task.D=17"], "task.D=17 is not allowed with task.length=16"),
    (["task=group_max_sum", "task.D=27", "task.length=40"], "D must be at most 26"),
    (["task=group_max_sum", "task.num_values=1"], "task.num_values=1 is not allowed"),
    (["model.net.max_seq_len=10"], "model.net.max_seq_len=10 is shorter than the task's"),
    (["model.lr=0"], "model.lr=0 is not allowed"),
    (["model.lr=-0.001"], "model.lr=-0.001 is not allowed"),
    (["ckpt_path={missing}"], "does not exist"),
    (["ckpt_path={not_a_checkpoint}"], "is not a loadable checkpoint"),
    (["ckpt_path={other_shape}"], "(model.net.d_model: checkpoint 16, this config 64)"),
    (["ckpt_path={unrecorded_shape}"], "was saved by a model of a different shape"),
    (["ckpt_path={runs_code}"], "weights_only=True (tensors and plain values only, never code)"),
    (["ckpt_path="], "ckpt_path is empty"),
    (["ckpt_path=/etc/passwd"], "'/etc/passwd' is not a loadable checkpoint: it is not a file"),
    (["heads=2", "ckpt_path={heads_4}"], "(heads: checkpoint 4, this config 2)"),
    (["scale=false", "ckpt_path={heads_4}"], "(scale: checkpoint true, this config false)"),
    (["trainer.max_steps=6", "ckpt_path={heads_4}"], "that run has nothing left to do"),
    (["seed=-1"], "seed=-1 is not allowed: it must be an integer from 0 to 2**32 - 1"),
    (["seed=1.5"], "seed=1.5 is not allowed"),
    (["seed=4294967296"], "seed=4294967296 is not allowed"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 is not allowed: it must be a positive integer"),
    (["model.warmup_steps=-1"], "model.warmup_steps=-1 is not allowed"),
    (["model.weight_decay=-1"], "model.weight_decay=-1 is not allowed"),
    (["model.net.layers=1000000"], "Lower model.net.layers=1000000 (or"),
    (["task=sort", "task.length=100000"], "Lower the task's sequence length (200000 tokens"),
    (["hydra.run.dir=/proc/forbidden"], "hydra.run.dir='/proc/forbidden' cannot be used"),
    (["paths.log_dir=/proc/forbidden"], "(under paths.log_dir='/proc/forbidden') cannot be"),
    (["threads=0"], "threads=0 is not allowed: it must be a positive integer"),
    (["threads=abc"], "threads='abc' is not allowed"),
    (["threads=1.5"], "threads=1.5 is not allowed"),
    (["compile=fast"], "compile='fast' is not allowed: use false (eager), true"),
    (["compile=2"], "one of its modes: default, reduce-overhead, max-autotune"),
    (["+foo=1"], "foo=1: nothing reads this key"),
    (["+paths.outptu_dir=x"], "paths.outptu_dir='x': nothing reads this key"),
    (["+trainer.no_such_arg=1"], "unexpected keyword argument 'no_such_arg'"),  # Trainer's own
    (["trainer.devices=64"], "trainer.devices=64 is more than this machine has"),
    (["trainer=ddp", "data.batch_size=63"], "data.batch_size=63 cannot be split evenly over 2"),
    (["-m", "trainer.devices=64"], "trainer.devices=64 is more than this machine has"),
    (["-m", "hydra/launcher=nope"], "Could not find 'hydra/launcher/nope'"),
    (["-m", "hydra/launcher=submitit_slurm"], "hydra.launcher.partition is not set"),
]


class _RunsCodeWhenUnpickled:
    """What a tampered checkpoint can hold: unpickling it would create `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


@pytest.fixture(scope="module")
def checkpoint_files(tmp_path_factory) -> dict[str, Path]:
    """Files for the ckpt_path rows: missing, not a checkpoint, another shape, tampered."""
    folder = tmp_path_factory.mktemp("checkpoints")
    (folder / "notes.ckpt").write_text("not a checkpoint\n")
    torch.save(
        {"state_dict": _RunsCodeWhenUnpickled(folder / "code_ran"), "global_step": 1},
        folder / "tampered.ckpt",
    )
    for name, overrides in (("d16", ["model.net.d_model=16"]), ("heads_4", ["heads=4"])):
        train(compose_config("train", [*TINY, *overrides], folder / name))
    # a checkpoint from before the model config was recorded: the shapes are still checked
    unrecorded = torch.load(folder / "d16" / "checkpoints" / "last.ckpt", weights_only=True)
    del unrecorded[MODEL_CONFIG_KEY]
    torch.save(unrecorded, folder / "unrecorded_d16.ckpt")
    return {
        "unrecorded_shape": folder / "unrecorded_d16.ckpt",
        "missing": folder / "nowhere.ckpt",
        "not_a_checkpoint": folder / "notes.ckpt",
        "other_shape": folder / "d16" / "checkpoints" / "last.ckpt",
        "runs_code": folder / "tampered.ckpt",
        "heads_4": folder / "heads_4" / "checkpoints" / "last.ckpt",  # 6 steps, default shapes
    }


@pytest.mark.parametrize("overrides, message", BAD_INPUTS, ids=lambda v: str(v))
def test_bad_input_exits_non_zero_with_a_clear_message(
    tmp_path, monkeypatch, capsys, overrides, message, request
):
    """Through the script's real entry point (Hydra's main), in this process for speed."""
    if any("{" in o for o in overrides):
        files = request.getfixturevalue("checkpoint_files")
        overrides = [o.format(**files) for o in overrides]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(TRAIN_SCRIPT), *overrides])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(TRAIN_SCRIPT), run_name="__main__")
    assert_refused_before_training(exit_info.value.code, capsys.readouterr().err, message, tmp_path)
    hydra_made_no_folder = overrides[0] == "-m" or "Could not find" in message or "/proc" in message
    if not hydra_made_no_folder:  # every refusal after Hydra made the folder is recorded there
        assert list(tmp_path.rglob("metrics.json"))
    if "tampered" in overrides[0]:  # refused without running what the file holds
        assert not (Path(overrides[0].split("=", 1)[1]).parent / "code_ran").exists()


def test_a_gpu_trainer_on_a_machine_without_a_gpu_says_so_and_what_to_use(
    tmp_path, monkeypatch, capsys
):
    """`trainer=gpu` without a GPU: plain words and the CPU's settings, not `Allowed: 1..0`."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(TRAIN_SCRIPT), "trainer=gpu"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(TRAIN_SCRIPT), run_name="__main__")
    stderr = capsys.readouterr().err
    message = "trainer.accelerator=gpu needs a GPU, and this machine has none"
    assert_refused_before_training(exit_info.value.code, stderr, message, tmp_path)
    assert exit_info.value.code == 2
    assert "trainer=default" in stderr and "trainer.accelerator=cpu" in stderr
    assert "1..0" not in stderr
