"""Benchmarks, every figure measured side by side in one run; medians over repeats.

    python scripts/bench.py                 # full run (a few minutes on 2 CPU cores)
    python scripts/bench.py --quick         # smoke run, under a minute
    python scripts/bench.py --json out.json # also write the table as JSON
    python scripts/bench.py --sweeps        # only the scale-out rows (launchers, DDP)
    python scripts/bench.py --gpu           # GPT-2 small's shape on an NVIDIA GPU
    python scripts/bench.py --gpu-default-shape  # the default model on a GPU: CUDA graphs, sweeps

Rows: src/bench/ (suites.py lists each mode's). Figures: scripts/results/bench/README.md.
Exit 2: bad input (unknown flag, a shape too big for memory, --gpu without a GPU); 1: a failure.
"""

import argparse
import json
import sys
from pathlib import Path

from src.bench.errors import BadInput, BenchError
from src.bench.measure import format_row
from src.bench.suites import cpu_suite, gpu_default_shape_suite, gpu_suite, machine, sweep_rows

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke run, under a minute")
    add("--json", type=Path, help="also write the rows here")
    add("--compile", action="store_true", help="also measure torch.compile")
    add("--sweeps", action="store_true", help="only the scale-out rows")
    add(
        "--shape",
        nargs="+",
        default=[],
        metavar="OVERRIDE",
        help="config overrides added to every CPU shape, e.g. model.net.layers=4",
    )
    add("--gpu", action="store_true", help="only the GPU rows, GPT-2 small's shape (needs CUDA)")
    add(
        "--gpu-on-cpu-tiny",
        action="store_true",
        help="the --gpu code path on CPU at a tiny shape (a test of the mode, not a figure)",
    )
    add(
        "--gpu-default-shape",
        action="store_true",
        help="only the default model on a GPU: eager vs CUDA graphs, sweeps sharing the GPU",
    )
    add(
        "--gpu-default-shape-on-cpu",
        action="store_true",
        help="the --gpu-default-shape code path on CPU (a test of the mode, not a figure)",
    )
    add(
        "--gap",
        action="store_true",
        help="with --gpu: also the Lightning gap's parts at that shape (eager, ~2 min)",
    )
    add(
        "--log-every",
        nargs="+",
        type=int,
        default=[],
        metavar="N",
        help="with --gpu: also the compiled plain loop / Lightning pair at "
        "trainer.log_every_n_steps=N (default 10), alternated with the other arms",
    )
    add(
        "--peak-tflops",
        type=float,
        help="the device's dense bf16 peak in TFLOP/s, for MFU (default: a table of known GPUs)",
    )
    args = parser.parse_args()
    for flag, value in (("--gap", args.gap), ("--log-every", args.log_every)):
        if value and not (args.gpu or args.gpu_on_cpu_tiny):
            parser.error(f"{flag} profiles the GPU shape: use it with --gpu or --gpu-on-cpu-tiny")
    return args


def measure(args: argparse.Namespace) -> tuple[list[dict], str]:
    """The rows of the mode the flags choose, and the mode's name for the table's title."""
    if args.sweeps:
        return sweep_rows(), "sweeps"
    if args.gpu_default_shape or args.gpu_default_shape_on_cpu:
        on_cpu = args.gpu_default_shape_on_cpu
        rows = gpu_default_shape_suite(on_cpu, args.quick, args.compile)
        return rows, "gpu-default-shape" + ("-on-cpu" if on_cpu else "")
    if args.gpu or args.gpu_on_cpu_tiny:
        tiny = args.gpu_on_cpu_tiny
        rows = gpu_suite(tiny, args.peak_tflops, args.quick, args.compile, args.gap, args.log_every)
        return rows, "gpu-on-cpu-tiny" if tiny else "gpu"
    return cpu_suite(args.quick, args.shape, args.compile), "quick" if args.quick else "full"


def main() -> int:
    args = parse_args()
    try:
        rows, kind = measure(args)
    except BenchError as err:  # BadInput: refused before any measuring
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(err, BadInput) else EXIT_FAILED
    line = machine()
    print(f"\nattnlab bench ({kind}), {line}\n")
    print("| what | value | goal | met | detail |\n|---|---|---|---|---|")
    for row in rows:
        print(format_row(row))
    if args.json:
        args.json.write_text(json.dumps({"machine": line, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
