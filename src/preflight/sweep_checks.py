"""Hydra callback that refuses a run's or a sweep's settings before any job is launched,
and sums a sweep up at its end.

Needs neither torch nor Lightning: it runs in the launching process. Hydra turns a
callback's exceptions into warnings, so the callback's hooks are the one place in src/ that
exits (with the documented code); the checks they call raise ConfigError like any other.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from src.preflight.checks import ConfigError
from src.preflight.devices import check_devices
from src.runs.records import read_record

# A run's exit code, from its record's status (README, When things go wrong). A sweep exits
# with the code of its first job (in job order) that did not finish.
EXIT_CODES = {"finished": 0, "refused": 2, "diverged": 3, "failed": 4}


class SweepChecks(Callback):
    """Hydra callback: refuse a sweep's launcher settings before any job is launched.

    A SLURM sweep without a partition would be queued and fail (or land somewhere else) on
    the cluster, hours later; here it stops at once with what to set (exit code 2).
    """

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        with _refusal_exits():
            check_folder(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        with _refusal_exits():
            check_folder(config, "hydra.sweep.dir")
            check_launcher(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        """One line for the jobs that did not finish (each printed its own error), and a
        non-zero exit; a sweep whose jobs all finished ends as Hydra ends it."""
        summary, code = sweep_outcome(Path(str(config.hydra.sweep.dir)))
        if code:
            print(f"\nerror: {summary}\n", file=sys.stderr)
            sys.exit(code)


@contextmanager
def _refusal_exits() -> Iterator[None]:
    try:
        yield
    except ConfigError as err:
        print(f"\nerror: {err} No job was started.\n", file=sys.stderr)
        sys.exit(EXIT_CODES["refused"])


def check_launcher(config: DictConfig) -> None:
    """A SLURM sweep names its partition; a local one fits this machine's devices."""
    launcher = config.hydra.launcher
    on_slurm = str(launcher.get("_target_", "")).endswith("SlurmLauncher")
    if on_slurm and not launcher.get("partition"):
        raise ConfigError(
            "hydra.launcher.partition is not set: a SLURM sweep needs the partition its "
            "jobs run in. Add hydra.launcher.partition=NAME (`sinfo -s` lists them); "
            "hydra.launcher.timeout_min, gpus_per_node and cpus_per_task size each job."
        )
    if not on_slurm:  # jobs run here, so this machine's devices are what they get
        check_devices(config.trainer)


def sweep_outcome(sweep_dir: Path) -> tuple[str, int]:
    """`1 of 4 jobs refused: 0_heads=3` (one clause per outcome) and the sweep's exit code."""
    jobs = sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=_job_number)
    stopped: dict[str, list[str]] = {}  # status -> job folders, in job order
    for job in jobs:
        record = read_record(job)[0] or {}
        status = record.get("status", "failed")  # no readable record: it did not finish
        if status != "finished":
            stopped.setdefault(status, []).append(job.name)
    if not stopped:
        return f"all {len(jobs)} jobs finished", 0
    clauses = [f"{len(n)} of {len(jobs)} jobs {s}: {', '.join(n)}" for s, n in stopped.items()]
    summary = "; ".join(clauses) + ". Each job's error is above and in its metrics.json."
    first = next(iter(stopped))  # dicts keep insertion order: the first job that stopped
    return summary, EXIT_CODES.get(first, EXIT_CODES["failed"])


def _job_number(job: Path) -> int:
    number = job.name.split("_", 1)[0]  # hydra.sweep.subdir is `<job number>_<overrides>`
    return int(number) if number.isdigit() else -1


def check_folder(config: DictConfig, key: str) -> None:
    """The run's (or sweep's) folder can be created and written, or the run is refused."""
    section, name = key.rsplit(".", 1)
    raw = str(OmegaConf.to_container(OmegaConf.select(config, section), resolve=False)[name])
    try:
        folder = Path(str(OmegaConf.select(config, key)))  # resolving claims a unique_dir
        if "${" not in raw and not os.environ.get("LOCAL_RANK"):  # a DDP rank joins rank 0's
            _refuse_a_used_folder(folder, key, raw)
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except (OSError, InterpolationResolutionError) as err:
        while not isinstance(err, OSError) and (err.__cause__ or err.__context__):
            err = err.__cause__ or err.__context__  # the OSError inside Hydra's resolution
        where = f"{key}={raw!r}"
        if "${" in raw:  # the default template: the folder is under paths.log_dir
            where = f"{key} (under paths.log_dir={config.paths.log_dir!r})"
        raise ConfigError(
            f"{where} cannot be used as the run's folder: creating or writing it failed "
            f"({getattr(err, 'strerror', None) or err}). Choose a folder you can write to, e.g. "
            f"{key}=logs/my_run, or paths.log_dir=DIR to move every run."
        ) from None


def _refuse_a_used_folder(folder: Path, key: str, raw: str) -> None:
    """A folder named by hand that already holds files is never written into: a run's
    metrics.json, checkpoints and log would be overwritten or mixed with another's."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    held = "already holds a run" if (folder / ".hydra").is_dir() else "is not empty"
    resume = ""
    if (folder / "checkpoints" / "last.ckpt").is_file():
        resume = (
            f" To continue that run, keep its config and add "
            f"ckpt_path={folder / 'checkpoints' / 'last.ckpt'} (it continues in a new folder)."
        )
    raise ConfigError(
        f"{key}={raw} {held}, and a run never writes into another's folder. Choose a new or "
        f"empty folder, or leave {key} out (each run gets a folder of its own).{resume}"
    )
