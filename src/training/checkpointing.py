"""Checkpoints that survive a crash and load without running code from the file.

A kill during a save must leave the previous checkpoint loadable, so each save goes to a
temporary file in the same folder, is flushed to disk, and then renamed over the old one
(a rename within a folder is atomic). Lightning's own save writes through a temporary file
in the system's temp folder and then *copies* it over when that is another disk, which a
kill can cut in half.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from src.validation import as_typed


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says which file and why."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the message says which file, why, and what of the
    previous one is left (always intact: the write went to a temporary file)."""


# Free space below this when a save fails: the disk filled up (torch.save reports a full
# disk as a RuntimeError of its zip writer, without the errno).
DISK_FULL_BYTES = 1 << 20


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to `<name>.tmp`, fsync, rename; load with `weights_only=True` always."""

    def save_checkpoint(
        self,
        checkpoint: dict[str, Any],
        path: str | os.PathLike,
        storage_options: Any | None = None,
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".tmp")
        try:
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except Exception as err:
            free = shutil.disk_usage(path.parent).free  # before the partial file is removed
            partial.unlink(missing_ok=True)
            raise CheckpointWriteError(_write_failure(path, err, free)) from err
        except BaseException:  # a kill or Ctrl-C: the previous checkpoint is untouched
            partial.unlink(missing_ok=True)
            raise

    def load_checkpoint(
        self, path: str | os.PathLike, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_checkpoint(path, map_location=map_location)


def _write_failure(path: Path, err: Exception, free: int) -> str:
    """Why writing `path` failed, and which checkpoint is left intact."""
    if getattr(err, "errno", None) == errno.ENOSPC or free < DISK_FULL_BYTES:
        why = f"the disk is full ({disk_space(path.parent, free)})"
    else:
        why = f"{type(err).__name__}: {err}"
    if path.is_file():
        kept = f"the previous {path.name} (step {step_of(path)}) is intact"
    else:
        kept = f"no earlier {path.name} existed"
    return f"writing the checkpoint {path} failed: {why}; {kept}"


def disk_space(folder: Path, free: int | None = None) -> str:
    """`N bytes free on <mount point>, which holds <folder>`: what a full-disk message names."""
    free = shutil.disk_usage(folder).free if free is None else free
    return f"{free:,} bytes free on {_mount_point(folder)}, which holds {folder}"


def _mount_point(folder: Path) -> Path:
    folder = folder.resolve()
    while not os.path.ismount(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def step_of(checkpoint: Path) -> int | str:
    """The training step a checkpoint was saved at, or "unreadable"."""
    try:
        return load_checkpoint(checkpoint)["global_step"]
    except CheckpointError:
        return "unreadable"


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """torch.load with weights_only semantics, every failure turned into a CheckpointError.

    weights_only unpickles tensors and plain Python values only, so a tampered or foreign
    file cannot run code here; it is refused with the reason instead.
    """
    if str(path).strip() in ("", "."):
        raise CheckpointError(
            "ckpt_path is empty (`ckpt_path=` with nothing after the `=`). Give the path of "
            "a Lightning checkpoint (a run's checkpoints/last.ckpt), `ckpt_path=last` for the "
            "newest one of the same config, or leave ckpt_path out to start from scratch."
        )
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"ckpt_path={str(path)!r} does not exist. Give the path of a Lightning checkpoint "
            "(a run's checkpoints/last.ckpt), `ckpt_path=last` for the newest one of the "
            "same config, or leave ckpt_path unset to start from scratch."
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (not a zip), EOFError, ...
        raise CheckpointError(
            f"ckpt_path={str(path)!r} is not a loadable checkpoint: {_why(err)}. Checkpoints "
            "are loaded with weights_only=True (tensors and plain values only, never code), "
            "so a truncated, tampered or foreign file is refused; use a checkpoints/*.ckpt "
            "written by `scripts/train.py`."
        ) from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "global_step"} <= set(checkpoint):
        raise CheckpointError(
            f"ckpt_path={str(path)!r} is not a Lightning training checkpoint: it has no "
            "`state_dict` and `global_step`. Use a checkpoints/*.ckpt written by "
            "`scripts/train.py`."
        )
    return checkpoint


def _why(err: Exception) -> str:
    """torch.load's failure in a few words (its own message advises weights_only=False)."""
    code = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if code:
        return f"it asks to import `{code.group(1)}`, which is code, not data"
    if "zip archive" in str(err) or isinstance(err, EOFError):
        return "it is truncated or not a torch checkpoint at all"
    if isinstance(err, pickle.UnpicklingError):
        return "it is not a torch checkpoint, or it holds more than tensors and plain values"
    if isinstance(err, OSError):
        return f"it cannot be read ({err.strerror or 'input/output error'})"
    return "it is not a file written by torch.save (a text file, or another format)"


def check_fits(checkpoint: dict[str, Any], model: nn.Module, path: str | os.PathLike) -> None:
    """Refuse a checkpoint whose tensors do not match this model's, naming the first few."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
    problems = [
        f"{k}: checkpoint {found[k]}, this config {shape}"
        for k, shape in expected.items()
        if k in found and found[k] != shape
    ]
    problems += [f"{k}: missing from the checkpoint" for k in expected if k not in found]
    problems += [f"{k}: not in this model" for k in found if k not in expected]
    if problems:
        listed = "; ".join(problems[:4]) + (
            f"; and {len(problems) - 4} more" if problems[4:] else ""
        )
        raise CheckpointError(
            f"ckpt_path={str(path)!r} was saved by a model of a different shape ({listed}). "
            "Resume with the config the checkpoint was trained with (its run folder's "
            ".hydra/config.yaml), or leave ckpt_path unset to start from scratch."
        )


MODEL_CONFIG_KEY = "attnlab_model_config"


THREADS_KEY = "attnlab_torch_threads"


class RecordModelConfig(L.Callback):
    """Stores the model-defining config (`preflight.checks.model_config`) in every checkpoint,
    and the torch threads the run used: the count changes results in the sixth digit, so a
    resume whose threads the policy chooses keeps the run's (src/training/run.py)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[MODEL_CONFIG_KEY] = dict(self.config)
        checkpoint[THREADS_KEY] = torch.get_num_threads()


# Knobs added after checkpoints began recording the model config, with the value that
# describes the models saved before them: an older record lacks the key, and matches this.
ADDED_LATER = {"model.net.rope_base": 10000}


def check_same_model(
    checkpoint: dict[str, Any], config: dict[str, Any], path: str | os.PathLike
) -> None:
    """Refuse a checkpoint saved by a model defined otherwise, naming every differing key.

    Equal shapes are not enough: heads=4 and heads=2 at d_model=64 both have a 64x64 W_q,
    but the weights mean different things. Checkpoints from before this record pass.
    """
    saved = checkpoint.get(MODEL_CONFIG_KEY)
    if not isinstance(saved, dict):
        return
    missing = object()
    differ = []
    for key in sorted(set(saved) | set(config)):
        old, new = saved.get(key, ADDED_LATER.get(key, missing)), config.get(key, missing)
        if old != new or type(old) is not type(new):  # scale=1 is not scale=true
            differ.append(f"{key}: checkpoint {_show(old)}, this config {_show(new)}")
    if differ:
        raise CheckpointError(
            f"ckpt_path={str(path)!r} was saved by a model defined differently ("
            f"{'; '.join(differ)}), so its weights would mean something else here. Resume "
            "with the config the checkpoint was trained with (its run folder's "
            ".hydra/config.yaml), or leave ckpt_path unset to start from scratch."
        )


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    return "(not set)" if type(value) is object else as_typed(value)


def check_not_finished(checkpoint: dict[str, Any], max_steps: int, path: str | os.PathLike) -> None:
    """A checkpoint at or past max_steps has nothing left to train: say so, train nothing."""
    step = checkpoint["global_step"]
    if step >= max_steps:
        run = Path(path).resolve().parent.parent
        raise CheckpointError(
            f"ckpt_path={str(path)!r} is at step {step} and trainer.max_steps={max_steps}: "
            f"that run has nothing left to do (its results are in {run / 'metrics.json'}). "
            f"To train it further, raise trainer.max_steps above {step}."
        )
