"""Refuse more processes than the machine has devices, before any job or process starts.

torch is imported only to count GPUs, so `--help` and a CPU sweep's launching process stay
light.
"""

from __future__ import annotations

from omegaconf import DictConfig

from src.preflight.checks import ConfigError
from src.preflight.threads import available_cpus


def check_devices(trainer_cfg: DictConfig) -> None:
    """More processes than the machine has GPUs (or CPU cores) is refused up front; a GPU
    trainer on a machine without a GPU is told so, and what to use instead."""
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
    if what == "GPU" and available == 0:
        raise ConfigError(
            f"trainer.accelerator={accelerator} needs a GPU, and this machine has none (torch "
            "sees no CUDA device). Allowed here: the CPU, with trainer=default, or add "
            "trainer.accelerator=cpu to keep the rest of this trainer config."
        )
    if devices > available:
        raise ConfigError(
            f"trainer.devices={devices} is more than this machine has: {available} {what}"
            f"{'s' if available != 1 else ''} for trainer.accelerator={accelerator}. Allowed: "
            f"1..{available} (one process per device), or -1 for all of them."
        )
