"""How many torch CPU threads a run uses: the one place that decides it.

Imports neither torch nor Lightning: a sweep's launching process calls threads_per_job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from omegaconf import DictConfig


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, not the whole machine)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


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


@dataclass(frozen=True)
class ThreadPolicy:
    """How many torch CPU threads a run uses; see thread_policy."""

    threads: int | None  # torch.set_num_threads(threads); None: leave torch's setting
    why: str  # for train.log


def thread_policy(
    requested: object, job_share: int | None, cpus: int, environ: Mapping[str, str]
) -> ThreadPolicy:
    """The one place that decides CPU threads.

    Why: with torch's default threads (all cores, OpenMP workers that busy-wait between
    parallel regions), one other CPU-bound process (a browser tab, a second run) cut the
    default shape from 100 to 22 it/s here. Measured side by side on 2 cores
    (scripts/results/bench/README.md): OMP_WAIT_POLICY=PASSIVE held 39 it/s under load but
    fell to 42 it/s idle; a shorter GOMP_SPINCOUNT did not help under load; one thread ran
    77 it/s idle and 75 under load. So the default is one thread: 0.76x the old idle speed,
    3.4x it on a shared machine. `threads=N` takes more on a machine you have to yourself.

    Order: an explicit `threads=N` wins; then a sweep job's share of the cores
    (threads_per_job); then an `OMP_NUM_THREADS` the user exported (torch already follows
    it); else one thread. A `requested` value check_values refuses counts as null here (the
    run is refused before any work).
    """
    if type(requested) is int and requested >= 1:  # not a bool, not a string
        return ThreadPolicy(requested, "threads=" + str(requested))
    if job_share is not None:
        return ThreadPolicy(job_share, "this job's share of the CPU cores")
    if environ.get("OMP_NUM_THREADS"):
        return ThreadPolicy(None, f"OMP_NUM_THREADS={environ['OMP_NUM_THREADS']}")
    return ThreadPolicy(
        1,
        f"the policy: 1 thread, robust when the {cpus} cores are shared (threads=N for more)",
    )
