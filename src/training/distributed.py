"""Lightning's DDP inside a Hydra job: attnlab starts the extra ranks, Lightning does the rest.

Lightning starts ranks 1..N-1 by re-running `sys.argv`. Inside a multirun that re-runs the
whole sweep (`-m heads=1,2,4` again, in the wrong folder; Lightning issue #11300), and
inside a joblib or submitit worker `sys.argv` is not even our script. Lightning has no hook
to change that command, but it documents a way around it (LightningEnvironment): when
`LOCAL_RANK` is set, the processes were started by someone else (torchrun, SLURM) and it
starts none. So `extra_ranks` starts each extra rank itself, as torchrun would: it runs
`scripts/train.py` with exactly this job's overrides, in this job's folder (one folder per
job, written by rank 0), and watches them. Lightning's launcher still forwards signals to
them: the one use of its internals, marked below.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch.distributed
from lightning.pytorch.strategies import DDPStrategy

from src.paths import TRAIN_SCRIPT

log = logging.getLogger(__name__)

# What torchrun (and Lightning's own launcher) tell every rank; rank 0 reads them too.
RANK_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
POLL_S = 5.0  # how often the ranks are checked; also the grace a failed rank's peers get


class HydraDDPStrategy(DDPStrategy):
    """`DDPStrategy` (gloo on CPU, NCCL on GPUs) whose extra ranks `extra_ranks` starts."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(start_method="popen", **kwargs)  # each rank a process of its own


def hydra_job_command(local_rank: int) -> tuple[list[str], str]:
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


@contextmanager
def extra_ranks(trainer: L.Trainer) -> Iterator[None]:
    """Around `trainer.fit`: start ranks 1..N-1 of a HydraDDPStrategy run, and end them after.

    A no-op for other strategies, for a single process, and where the ranks were started by
    someone else (SLURM tasks, torchrun, or this function in the parent process). Afterwards
    the process group and the rank variables are gone, so the next job of a sweep run in
    this process starts its own.
    """
    strategy = trainer.strategy
    if (
        not isinstance(strategy, HydraDDPStrategy)
        or strategy.num_processes < 2
        or strategy.cluster_environment.creates_processes_externally
    ):
        yield
        return
    environment = strategy.cluster_environment
    saved = {name: os.environ.get(name) for name in RANK_VARIABLES}
    os.environ.update(
        MASTER_ADDR=environment.main_address,
        MASTER_PORT=str(environment.main_port),
        NODE_RANK=str(environment.node_rank()),
        LOCAL_RANK="0",  # from here on, Lightning leaves starting processes to us
        WORLD_SIZE=str(strategy.num_processes * strategy.num_nodes),
    )
    ranks: list[subprocess.Popen] = []
    done, failed = threading.Event(), False
    try:
        for local_rank in range(1, strategy.num_processes):
            command, cwd = hydra_job_command(local_rank)
            env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            ranks.append(subprocess.Popen(command, env=env, cwd=cwd))
        # The one private piece, for want of a public hook: Lightning's launcher forwards
        # SIGTERM and Ctrl-C to the processes in its `procs` list, and after a SIGTERM rank 0
        # waits for the others in a broadcast they join only once they got the signal too.
        # tests/integration/test_contracts.py checks it against Lightning; pyproject.toml
        # pins the range.
        strategy.launcher.procs.extend(ranks)
        threading.Thread(target=watch_ranks, args=(ranks, done, _stop_job), daemon=True).start()
        yield
    except BaseException:
        failed = True
        raise
    finally:
        done.set()
        for rank in ranks:  # they leave fit with this one, unless it failed on its own
            try:
                rank.wait(timeout=POLL_S if failed else 60)
            except subprocess.TimeoutExpired:
                rank.kill()  # waiting in a collective for this rank, which has left
                rank.wait()
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def watch_ranks(
    ranks: list[subprocess.Popen], done: threading.Event, stop: Callable[[str], None]
) -> None:
    """Stop the job when an extra rank fails while this one still trains.

    Without this, the others would wait for it in their next collective until the process
    group's timeout (30 minutes). A failure shared by all ranks (a diverged run stops every
    rank at the same step) ends this rank's training within the grace period, and is left
    to it.
    """
    while not done.wait(POLL_S):
        codes = [rank.poll() for rank in ranks]  # None: still running
        if all(code == 0 for code in codes):
            return
        failed = [f"rank {i} exited with code {code}" for i, code in enumerate(codes, 1) if code]
        if failed and not done.wait(POLL_S):
            for rank in ranks:
                if rank.poll() is None:
                    rank.kill()
            stop(", ".join(failed))
            return


def _stop_job(why: str) -> None:
    log.error("%s; stopping this job (its other ranks cannot go on without it)", why)
    logging.shutdown()  # flush train.log: os._exit skips the interpreter's clean-up
    os._exit(1)  # from this thread, even while the main thread waits in a collective
