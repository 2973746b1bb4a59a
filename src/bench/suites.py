"""What each mode of scripts/bench.py measures, in the order it prints the rows: the CPU
run (full, or --quick), --gpu (or its code path on CPU, --gpu-on-cpu-tiny) and --sweeps;
and the machine line the table starts with. Refusals raise BadInput before any measuring."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence

from src.bench.rows_gpu import gpu_rows
from src.bench.rows_gpu_small import shared_gpu_sweep_rows, step_rows
from src.bench.rows_model import (
    attention_rows,
    callback_overhead_rows,
    compile_row,
    data_share,
    lightning_gap_rows,
    train_ratio_rows,
)
from src.bench.rows_process import default_run, quick_exit_rows, startup, thread_rows
from src.bench.rows_sweeps import sweep_rows
from src.bench.shapes import gpu_shape, preflight, require_cuda

__all__ = ["cpu_suite", "gpu_default_shape_suite", "gpu_suite", "machine", "sweep_rows"]


def cpu_suite(quick: bool, extra: list[str], compile_: bool) -> list[dict]:
    """Every CPU row, medians of 3 alternated repeats (`quick`: 1, fewer steps, and without
    the large shape, the Lightning gap, the default run and the old threads under load).
    `extra`: overrides added to every CPU shape; `compile_`: also torch.compile's row."""
    preflight(extra, gpu=False)
    repeats = 1 if quick else 3
    rows, default_step = train_ratio_rows(quick, extra, repeats)
    if not quick:
        rows += lightning_gap_rows(quick, repeats)
    rows += attention_rows(quick)
    rows.append(data_share(["~callbacks"], default_step, quick))
    rows += callback_overhead_rows(quick, repeats)
    rows += thread_rows(quick, repeats)
    rows += startup(repeats)
    if not quick:
        rows += default_run(repeats)
    rows += quick_exit_rows(repeats)
    if compile_:
        rows.append(compile_row())
    return rows


def gpu_suite(
    tiny: bool,
    peak_tflops: float | None,
    quick: bool,
    compile_: bool,
    gap: bool,
    log_every: Sequence[int] = (),
) -> list[dict]:
    """The GPU rows at GPT-2 small's shape (`tiny`: the same code on CPU, compiled arms only
    with `compile_`); `gap`: also the Lightning gap's parts at that shape, eager;
    `log_every`: also the pair at those logging intervals (src/bench/rows_gpu.py)."""
    if not tiny:
        require_cuda()
        preflight([], gpu=True)
    compile_arm = not tiny or compile_
    rows = gpu_rows(tiny, peak_tflops, quick, compile_arm=compile_arm, log_every=log_every)
    if gap:  # 40 steps an arm: a GPU's step times vary far less than a shared CPU's
        rows += lightning_gap_rows(True, 1 if tiny else 2, *gpu_shape(tiny), "GPU shape: ")
    return rows


def gpu_default_shape_suite(on_cpu: bool, quick: bool, compile_: bool) -> list[dict]:
    """The default model on a GPU: eager against CUDA graphs, and sweeps sharing the GPU
    (src/bench/rows_gpu_small.py). `on_cpu`: the code path on CPU, graphs only with
    `compile_` (compiling takes longer than the rest)."""
    if not on_cpu:
        require_cuda("--gpu-default-shape", "--gpu-default-shape-on-cpu")
    return step_rows(on_cpu, quick, not on_cpu or compile_) + shared_gpu_sweep_rows(on_cpu, quick)


def machine() -> str:
    """The processor, cores, torch and its threads: the line above every table."""
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
