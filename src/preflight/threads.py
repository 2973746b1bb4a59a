"""How many torch CPU threads a run uses: the one place that decides it.

Imports neither torch, Lightning nor OmegaConf: a sweep's launching process calls
threads_per_job, and a run's first idle-core window starts when this module is imported.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

# A core counts as idle when at least this share of it was free over the window.
IDLE_SHARE = 0.7
MIN_WINDOW_S = 0.2


# A container's CPU quota (cgroup v2): "max PERIOD", or "QUOTA PERIOD" in microseconds.
CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def available_cpus() -> int:
    """CPU cores this process may run on: its affinity mask, and no more than its container's
    CPU quota (rounded up). Not the whole machine: /proc/stat and torch both see the host."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cgroup_cpu_quota()
    return max(1, min(cpus or 1, math.ceil(quota))) if quota else cpus or 1


def cgroup_cpu_quota() -> float | None:
    """CPUs' worth of time the container may use (cgroup v2's cpu.max); None: no limit set."""
    try:
        with open(CGROUP_CPU_MAX) as limit:
            quota, period = limit.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


@dataclass(frozen=True)
class CpuSample:
    """Idle seconds per allowed core (from /proc/stat), this process's CPU seconds, a clock."""

    idle_s: tuple[float, ...]
    own_cpu_s: float
    at: float


def cpu_sample() -> CpuSample | None:
    """Now, for idle_cores; None where /proc/stat cannot be read (not Linux)."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        with open("/proc/stat") as stat:
            lines = [line.split() for line in stat if line.startswith("cpu") and line[3] != " "]
    except OSError:
        return None
    idle = tuple(
        (int(f[4]) + int(f[5])) / tick  # idle + iowait jiffies
        for f in lines
        if allowed is None or int(f[0][3:]) in allowed
    )
    own = os.times()
    return CpuSample(idle, own.user + own.system, time.monotonic())


_last_sample = cpu_sample()  # the first window runs from this import to the first decision


def idle_cores() -> float | None:
    """How many of this process's cores were free since the last call (the first call: since
    this module was imported, so the window is the start-up's imports, at no cost).

    This process's own CPU time counts as free: it is the run that will use the cores. At
    least MIN_WINDOW_S is measured (it waits for the rest). None where /proc/stat is missing.
    """
    global _last_sample
    before = _last_sample
    if before is None:
        return None
    wait = MIN_WINDOW_S - (time.monotonic() - before.at)
    if wait > 0:
        time.sleep(wait)
    after = _last_sample = cpu_sample()
    if after is None or len(after.idle_s) != len(before.idle_s):
        return None
    window = after.at - before.at
    free = (
        sum(b - a for a, b in zip(before.idle_s, after.idle_s)) + after.own_cpu_s - before.own_cpu_s
    )
    return min(len(after.idle_s), max(0.0, free / window))


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
    automatic: bool = False  # chosen by the policy, not by a knob, a share or the environment


def thread_policy(
    requested: object,
    job_share: int | None,
    cpus: int,
    environ: Mapping[str, str],
    idle: float | None = None,
    most: int | None = None,
) -> ThreadPolicy:
    """The one place that decides CPU threads.

    Why: with torch's default threads (all cores, OpenMP workers that busy-wait between
    parallel regions), one other CPU-bound process (a browser tab, a second run) cut the
    default shape to a fifth of its idle speed here, while one thread held its speed beside
    it but ran a third slower on an idle machine (scripts/results/bench/README.md). So a run
    takes the cores that are idle when it starts: `idle`, measured by idle_cores over the
    start-up, whole cores with IDLE_SHARE free counting; at most `most` (torch's default
    count), at least one. The cost: a process that starts *after* the run slows it as it
    slows torch's default (threads=1 is robust to that); and the count can differ between
    two runs of one config, which changes results in the sixth digit (train.log says which;
    threads=N fixes it).

    Order: an explicit `threads=N` wins; then a sweep job's share of the cores
    (threads_per_job); then an `OMP_NUM_THREADS` the user exported (torch already follows
    it); then the idle cores; else (no /proc/stat) one thread. A `requested` value
    check_values refuses counts as null here (the run is refused before any work).
    """
    if type(requested) is int and requested >= 1:  # not a bool, not a string
        return ThreadPolicy(requested, "threads=" + str(requested))
    if job_share is not None:
        return ThreadPolicy(job_share, "this job's share of the CPU cores")
    if environ.get("OMP_NUM_THREADS"):
        return ThreadPolicy(None, f"OMP_NUM_THREADS={environ['OMP_NUM_THREADS']}")
    if idle is None:
        why = "1 thread: the idle cores could not be measured (threads=N for more)"
        return ThreadPolicy(1, why, automatic=True)
    free = math.floor(idle + 1 - IDLE_SHARE)
    threads = max(1, min(free, most or cpus, cpus))
    return ThreadPolicy(
        threads,
        f"the policy: {threads}, as {idle:.1f} of {cpus} cores were idle at start "
        "(threads=N to choose)",
        automatic=True,
    )


def measured_policy(
    requested: object, job_share: int | None, environ: Mapping[str, str], most: int
) -> ThreadPolicy:
    """thread_policy with this process's cores and the idle cores measured now: what a run
    (src/training/run.py) and the bench's thread probe decide with. `most`: torch's default."""
    return thread_policy(requested, job_share, available_cpus(), environ, idle_cores(), most)
