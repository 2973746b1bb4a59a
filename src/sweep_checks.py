"""Hydra callback that refuses a run's or a sweep's settings before any job is launched.

Needs neither torch nor Lightning: it runs in the launching process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from src.config import ConfigError
from src.devices import check_devices


class SweepChecks(Callback):
    """Hydra callback: refuse a sweep's launcher settings before any job is launched.

    A SLURM sweep without a partition would be queued and fail (or land somewhere else) on
    the cluster, hours later; here it stops at once with what to set. Hydra turns a
    callback's exceptions into warnings, so a refusal exits (code 2) instead.
    """

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        _check_folder(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        _check_folder(config, "hydra.sweep.dir")
        launcher = config.hydra.launcher
        on_slurm = str(launcher.get("_target_", "")).endswith("SlurmLauncher")
        if on_slurm and not launcher.get("partition"):
            _refuse(
                "hydra.launcher.partition is not set: a SLURM sweep needs the partition its "
                "jobs run in. Add hydra.launcher.partition=NAME (`sinfo -s` lists them); "
                "hydra.launcher.timeout_min, gpus_per_node and cpus_per_task size each job."
            )
        if not on_slurm:  # jobs run here, so this machine's devices are what they get
            try:
                check_devices(config.trainer)
            except ConfigError as err:
                _refuse(str(err))


def _check_folder(config: DictConfig, key: str) -> None:
    """The run's (or sweep's) folder can be created and written, or the run is refused."""
    section, name = key.rsplit(".", 1)
    raw = str(OmegaConf.select(config, section)._get_node(name)._value())
    try:
        folder = Path(str(OmegaConf.select(config, key)))  # resolving claims a unique_dir
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except (OSError, InterpolationResolutionError) as err:
        while not isinstance(err, OSError) and (err.__cause__ or err.__context__):
            err = err.__cause__ or err.__context__  # the OSError inside Hydra's resolution
        where = f"{key}={raw!r}"
        if "${" in raw:  # the default template: the folder is under paths.log_dir
            where = f"{key} (under paths.log_dir={config.paths.log_dir!r})"
        _refuse(
            f"{where} cannot be used as the run's folder: creating or writing it failed "
            f"({getattr(err, 'strerror', None) or err}). Choose a folder you can write to, e.g. "
            f"{key}=logs/my_run, or paths.log_dir=DIR to move every run."
        )


def _refuse(message: str) -> None:
    print(f"\nerror: {message} No job was started.\n", file=sys.stderr)
    sys.exit(2)
