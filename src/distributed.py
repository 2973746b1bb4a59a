"""Lightning's DDP, with extra processes that re-run this Hydra *job*, not the whole command.

Lightning starts ranks 1..N-1 by re-running `sys.argv` with `hydra.run.dir` set. Inside a
multirun that re-runs the whole sweep (`-m heads=1,2,4` again, in the wrong folder;
Lightning issue #11300), and inside a joblib or submitit worker `sys.argv` is not even
our script. Here each extra rank runs `scripts/train.py` with exactly this job's
overrides, in this job's folder, as a plain run: one folder per job, written by rank 0.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers import subprocess_script
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"


def hydra_job_command(local_rank: int) -> tuple[Sequence[str], str]:
    """The command that starts rank `local_rank` of the current Hydra job, and its cwd."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    job = HydraConfig.get()
    command = [sys.executable, str(TRAIN_SCRIPT), *job.overrides.task]
    command += [
        f'hydra.run.dir="{job.runtime.output_dir}"',  # rank 0's folder: one folder per job
        "hydra.output_subdir=null",  # rank 0 has written .hydra/ already
        f"hydra.job.name=rank{local_rank}",  # its log goes to rank1.log beside train.log
    ]
    return command, get_original_cwd()


class _HydraJobLauncher(_SubprocessScriptLauncher):
    def _call_children_scripts(self) -> None:
        with mock.patch.object(subprocess_script, "_hydra_subprocess_cmd", hydra_job_command):
            super()._call_children_scripts()


class HydraDDPStrategy(DDPStrategy):
    """`DDPStrategy` (gloo on CPU, NCCL on GPUs) that also works inside Hydra multiruns."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = _HydraJobLauncher(
                self.cluster_environment, self.num_processes, self.num_nodes
            )
