"""Config helpers that need neither torch nor Lightning (so `--help` stays instant and a
sweep's launching process stays light); only counting GPUs imports torch."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what is allowed."""


# What may differ between a run and the run it resumes with `ckpt_path=last`.
NOT_PART_OF_THE_RUN = ("ckpt_path", "paths")


def run_name(overrides: str, limit: int = 120) -> str:
    """A run folder's name: its overrides (`heads=2,scale=false`), or `default`.

    A `/` in a value (a path) is written `%2F`, so the name stays one folder. Long override
    lists are cut and suffixed with a hash, staying under file-name limits.
    """
    overrides = overrides.replace("/", "%2F")
    if len(overrides) <= limit:
        return overrides or "default"
    return f"{overrides[:limit]}..{hashlib.sha1(overrides.encode()).hexdigest()[:8]}"


def unique_dir(path: str) -> str:
    """Claim `path` as a new folder, or `path_2`, `path_3`, ... if another run has it.

    `os.mkdir` fails if the folder exists, even when two processes race for it in the same
    second, so no two runs (or multiruns) ever share a folder. Registered with Hydra's
    resolver cache, so a job resolves its folder once and sweep jobs share the sweep's.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    candidate, n = path, 1
    while True:
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            n += 1
            candidate = f"{path}_{n}"


def _comparable(cfg: DictConfig) -> dict:
    container = OmegaConf.to_container(cfg, resolve=False)
    return {k: v for k, v in container.items() if k not in NOT_PART_OF_THE_RUN}


def find_last_checkpoint(log_dir: Path, cfg: DictConfig) -> Path | None:
    """The newest `checkpoints/last.ckpt` under `log_dir` whose run had this same config."""
    wanted = _comparable(cfg)
    candidates = []
    for checkpoint in log_dir.glob("**/checkpoints/last.ckpt"):
        saved = checkpoint.parent.parent / ".hydra" / "config.yaml"
        if saved.is_file() and _comparable(OmegaConf.load(saved)) == wanted:
            candidates.append(checkpoint)
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, not the whole machine)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def check_devices(trainer_cfg: DictConfig) -> None:
    """More processes than the machine has GPUs (or CPU cores) is refused up front."""
    devices, accelerator = trainer_cfg.get("devices"), str(trainer_cfg.get("accelerator"))
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        return  # "auto", -1 and lists are Lightning's to check
    if accelerator not in ("gpu", "cuda", "cpu", "auto"):
        return
    available, what = available_cpus(), "CPU core"
    if accelerator != "cpu":
        import torch  # only for GPUs: --help and CPU sweeps' launchers stay light

        if accelerator != "auto" or torch.cuda.is_available():
            available, what = torch.cuda.device_count(), "GPU"
    if devices > available:
        raise ConfigError(
            f"trainer.devices={devices} is more than this machine has: {available} {what}"
            f"{'s' if available != 1 else ''} for trainer.accelerator={accelerator}. Allowed: "
            f"1..{available} (one process per device), or -1 for all of them."
        )


def threads_per_job(launcher: DictConfig | None, cpus: int) -> int | None:
    """torch threads for one job of a sweep whose jobs run side by side, or None (leave as is).

    joblib runs `n_jobs` jobs at once (negative counts back from all cores, as in joblib);
    submitit gives each job `cpus_per_task` cores when set. Each job then takes its share,
    so N jobs on N cores do not run N*N threads.
    """
    if launcher is None:
        return None
    if launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    n_jobs = launcher.get("n_jobs")
    if isinstance(n_jobs, int) and n_jobs != 0:
        parallel = n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)
        return max(1, cpus // parallel)
    return None


class SweepChecks(Callback):
    """Hydra callback: refuse a sweep's launcher settings before any job is launched.

    A SLURM sweep without a partition would be queued and fail (or land somewhere else) on
    the cluster, hours later; here it stops at once with what to set. Hydra turns a
    callback's exceptions into warnings, so a refusal exits (code 2) instead.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
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


def _refuse(message: str) -> None:
    print(f"\nerror: {message} No job was started.\n", file=sys.stderr)
    sys.exit(2)


def register_resolvers() -> None:
    """`${run_name:...}` and `${unique_dir:...}` in conf/hydra/default.yaml."""
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("unique_dir", unique_dir, replace=True, use_cache=True)
