"""Measuring helpers for scripts/bench.py: repeats, medians, goals, fresh processes, FLOPs.

No torch here: the bench's parent process stays light, and each measured process starts
from nothing (its own imports, its own OpenMP settings, its own peak RSS).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

# Variables that steer torch's CPU threads; a measured process gets them only on purpose.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "GOMP_SPINCOUNT")

# Dense bf16 tensor-core peaks, TFLOP/s, by a substring of torch.cuda.get_device_name().
# H200: the figure the committed GPU rows were computed with; check it against the datasheet
# of the card at hand and pass --peak-tflops when it differs. A100: the 312 nanoGPT uses.
PEAK_BF16_TFLOPS = {"H200": 790.0, "H100": 989.0, "A100": 312.0}


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no measurements")
    return statistics.median(values)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; nan (not an exception) when the denominator is 0."""
    return numerator / denominator if denominator else float("nan")


def alternate(arms: Mapping[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run each arm `repeats` times, interleaved and in reversed order every other round
    (A B, B A, A B, ...), so a machine that drifts (another job starts, a CPU warms) hits
    every arm alike instead of the arm that happens to run last."""
    names = list(arms)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            samples[name].append(arms[name]())
    return samples


_GOAL = re.compile(r"^\s*(<=|>=|<|>)\s*(-?[\d.]+(?:e-?\d+)?)")


def goal_met(value: float, goal: str) -> str:
    """'met' or 'not met' for a goal written '>= 0.95' or '<= 4 s'; '' when the goal is
    not a comparison (a note, or no goal)."""
    found = _GOAL.match(goal)
    if not found or value != value:  # no comparison, or nan
        return ""
    op, target = found.group(1), float(found.group(2))
    ok = {"<=": value <= target, ">=": value >= target, "<": value < target, ">": value > target}
    return "met" if ok[op] else "not met"


def format_row(row: Mapping[str, object]) -> str:
    """One markdown table row: what | value | goal | met | detail."""
    value = row["value"]
    shown = f"{value:.3g}" if isinstance(value, float | int) else str(value)
    met = goal_met(value, str(row["goal"])) if isinstance(value, float | int) else ""
    return f"| {row['what']} | {shown} | {row['goal']} | {met} | {row['detail']} |"


def child_env(base: Mapping[str, str], **set_: str) -> dict[str, str]:
    """`base` without the thread variables, plus `set_`: what a measured process starts with."""
    env = {k: v for k, v in base.items() if k not in THREAD_VARIABLES}
    env.update(set_)
    return env


@dataclass
class ProcessResult:
    wall_s: float  # from just before the fork to the child's exit
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mib: float  # this child's own peak resident memory (not the largest child's)


def run_timed(cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd=None) -> ProcessResult:
    """Run `cmd` to its end; wall time and the child's own peak RSS.

    The peak is the child's VmHWM, read from /proc every 20 ms while it runs. Not wait4's
    ru_maxrss: Linux carries the high-water mark across exec, so that figure starts at the
    RSS of the forked parent (a bench process holding torch read ~1.5 GiB for a 1 GiB run)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        peak_kib = 0
        while True:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ProcessResult(
            wall,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            peak_kib / 1024,
        )


def _vm_hwm_kib(pid: int) -> int:
    """A running process's peak resident set since its exec (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


BUSY_LOOP = "import sys, time\nt = time.time() + float(sys.argv[1])\nwhile time.time() < t: pass"


@contextmanager
def busy_process(max_seconds: float) -> Iterator[subprocess.Popen]:
    """One competing CPU-bound process (a pure-Python spin) for the body of the `with`.

    It stops itself after `max_seconds` whatever happens, and is ended on leaving the block."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(max_seconds)])
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def flops_per_token(params: int, layers: int, heads: int, head_dim: int, seq_len: int) -> int:
    """Training FLOPs per token as nanoGPT counts them (PaLM appendix B): 6N for the
    matmuls with the weights, forward and backward, plus 12*L*H*Q*T for attention's
    q.k and weights.v. N excludes the positional table (a lookup, not a matmul)."""
    return 6 * params + 12 * layers * heads * head_dim * seq_len


def mfu(tokens_per_s: float, flops_token: int, peak_tflops: float) -> float:
    """Model FLOPs utilisation: the FLOPs the model needs per second over the device's peak."""
    return tokens_per_s * flops_token / (peak_tflops * 1e12)


def peak_tflops_for(device_name: str, override: float | None) -> float | None:
    """--peak-tflops if given, else the table's entry for this device, else None."""
    if override is not None:
        return override
    for key, peak in PEAK_BF16_TFLOPS.items():
        if key.lower() in device_name.lower():
            return peak
    return None
