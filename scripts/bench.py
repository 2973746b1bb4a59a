"""Benchmarks, every figure measured side by side in one run; medians over repeats.

    python scripts/bench.py                 # full run (a few minutes on 2 CPU cores)
    python scripts/bench.py --quick         # smoke run, under a minute
    python scripts/bench.py --json out.json # also write the table as JSON
    python scripts/bench.py --sweeps        # only the scale-out rows (launchers, DDP)

Rows: training throughput of Lightning + Trainer against a plain PyTorch loop (same model,
batches, optimizer, schedule); attention forward+backward of the module's fast path and its
explicit path against F.scaled_dot_product_attention called directly; the data generator's
share of a step; the diagnostics' and non-finite guard's overhead; start-up; peak memory;
torch.compile; and (--sweeps) one sweep under each Hydra launcher and one run under DDP.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.bench.measure import (  # noqa: E402  (after the path, so `src` is this checkout)
    alternate,
    busy_process,
    child_env,
    format_row,
    median,
    mfu,
    peak_tflops_for,
    ratio,
    run_timed,
)
from src.preflight.threads import available_cpus, thread_policy  # noqa: E402

EXIT_BAD_INPUT = 2
TRAIN = str(ROOT / "scripts" / "train.py")

SHAPES = {  # name -> overrides of the real configs
    "default": [],
    "large": [
        "model.net.d_model=256",
        "model.net.layers=4",
        "heads=8",
        "task=copy",
        "task.length=128",
        "data.batch_size=16",
    ],
}


from src.bench.timed_loops import (  # noqa: E402
    attention_timings,
    build_parts,
    check_sdpa_backend,
    compose,
    lightning_seconds_per_step,
    model_flops_per_token,
    plain_seconds_per_step,
)


def attention_rows(quick: bool) -> list[dict]:
    """Forward+backward of MultiHeadAttention's two paths against direct SDPA."""
    shapes = {"default": (64, 16, 64, 4), "large": (16, 256, 256, 8)}
    rows = []
    for name, (B, T, d, h) in list(shapes.items())[: 1 if quick else 2]:
        t = attention_timings(B, T, d, h, budget=0.3 if quick else 1.5)
        ref = t["direct"]
        rows.append(
            {
                "what": f"attention fwd+bwd, fast path / direct SDPA ({name} B{B} T{T} d{d} h{h})",
                "value": t["fast"] / ref,
                "goal": "<= 1.05",
                "detail": f"{t['fast'] * 1e3:.2f} ms vs {ref * 1e3:.2f} ms",
            }
        )
        rows.append(
            {
                "what": f"attention fwd+bwd, explicit path / direct SDPA ({name})",
                "value": t["explicit"] / ref,
                "goal": "(inspection only)",
                "detail": f"{t['explicit'] * 1e3:.2f} ms",
            }
        )
    return rows


# The Lightning gap, one part at a time: each arm adds one thing to the one before it
# (or, for the callbacks, to the bare automatic run), default shape, no validation.
GAP_ARMS = {
    "plain loop": lambda b, s, w, d: plain_seconds_per_step(b, s, w, device=d)[0],
    "plain loop + DataLoader": lambda b, s, w, d: plain_seconds_per_step(
        b, s, w, device=d, loader=True
    )[0],
    "Lightning, manual optimisation": lambda b, s, w, _: lightning_seconds_per_step(
        b, s, w, None, logger=False, log_steps=False, manual=True
    ),
    "Lightning, automatic (closure)": lambda b, s, w, _: lightning_seconds_per_step(
        b, s, w, None, logger=False, log_steps=False
    ),
    "+ self.log every 10 steps, TensorBoard": lambda b, s, w, _: lightning_seconds_per_step(
        b, s, w, None
    ),
    "+ progress bar": lambda b, s, w, _: lightning_seconds_per_step(
        b, s, w, None, logger=False, log_steps=False, progress_bar=True
    ),
    "+ NonFiniteGuard": lambda b, s, w, _: lightning_seconds_per_step(
        b, s, w, "NonFiniteGuard", logger=False, log_steps=False
    ),
}
GAP_PARTS = [  # (what, arm, compared with)
    ("the DataLoader and its collation", "plain loop + DataLoader", "plain loop"),
    ("Lightning's loop and hooks", "Lightning, manual optimisation", "plain loop + DataLoader"),
    (
        "automatic optimisation's closure",
        "Lightning, automatic (closure)",
        "Lightning, manual optimisation",
    ),
    (
        "self.log + metric objects + TensorBoard",
        "+ self.log every 10 steps, TensorBoard",
        "Lightning, automatic (closure)",
    ),
    ("the progress bar", "+ progress bar", "Lightning, automatic (closure)"),
    (
        "the NonFiniteGuard's check and host sync",
        "+ NonFiniteGuard",
        "Lightning, automatic (closure)",
    ),
]


def lightning_gap_rows(
    quick: bool, repeats: int, base: list[str] | None = None, device: str = "cpu", label: str = ""
) -> list[dict]:
    """Where the per-step gap between Lightning and the plain loop goes, in ms per step
    (each arm from the same process, arms alternated, medians). `base`: the shape's
    overrides (default: the default shape); the Lightning arms take the device from it."""
    steps, warmup = (40, 5) if quick else (300, 20)
    base = (base or []) + ["~callbacks"]
    samples = alternate(
        {name: (lambda f=f: f(base, steps, warmup, device)) for name, f in GAP_ARMS.items()},
        repeats,
    )
    ms = {name: median(v) * 1e3 for name, v in samples.items()}
    rows = [
        {
            "what": f"{label}Lightning gap: {what} (ms/step)",
            "value": ms[arm] - ms[against],
            "goal": "(profile)",
            "detail": f"{ms[arm]:.2f} vs {ms[against]:.2f} ms/step, "
            f"{(ms[arm] - ms[against]) / ms['plain loop']:+.1%} of the plain step",
        }
        for what, arm, against in GAP_PARTS
    ]
    return rows


def data_share(overrides, step_seconds: float, quick: bool = False) -> dict:
    """One batch from the generator, as a share of a training step: the median of 7 timed
    blocks of batches. (torch's Timer.blocked_autorange sized its blocks at 100,000 calls
    of this 35 us function, 7 s for a --quick row.)"""
    from src.data.datamodule import TRAIN_STREAM, task_batch

    with tempfile.TemporaryDirectory() as out:
        cfg, parts = build_parts(overrides, out)
    task, size = parts.task, cfg.data.batch_size
    per_block = 200 if quick else 2000
    blocks, step = [], 0
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(per_block):
            task_batch(task, size, 0, TRAIN_STREAM, step)
            step += 1
        blocks.append((time.perf_counter() - start) / per_block)
    seconds = median(blocks)
    return {
        "what": "data generator / training step (default)",
        "value": seconds / step_seconds,
        "goal": "<= 0.02",
        "detail": f"{seconds * 1e6:.0f} us per batch",
    }


def _bytecode_present() -> bool:
    """Whether lightning's modules have .pyc files next to them (a `uv sync` with
    compile-bytecode, or a run without PYTHONDONTWRITEBYTECODE, leaves them)."""
    import importlib.util

    spec = importlib.util.find_spec("lightning")
    origin = spec.origin if spec else None
    return bool(origin) and Path(importlib.util.cache_from_source(origin)).is_file()


def _bytecode_label() -> str:
    present = "present" if _bytecode_present() else "ABSENT"
    return f".pyc {present}, PYTHONDONTWRITEBYTECODE=1"


STARTUP_PROBE = r"""
import time, sys, json
t0 = float(sys.argv[1]); marks = {"interpreter up": time.time() - t0}
import torch; marks["import torch"] = time.time() - t0
import lightning; marks["import lightning"] = time.time() - t0
sys.path.insert(0, sys.argv[2]); import src.bench.timed_loops as b
cfg, parts = b.build_parts(["trainer.max_steps=1", "trainer.enable_progress_bar=false",
                            "trainer.enable_model_summary=false", "~callbacks", "~logger"],
                           sys.argv[3])
marks["compose config + build model, data, trainer"] = time.time() - t0
parts.trainer.fit(parts.model, datamodule=parts.datamodule)
marks["first optimizer step done"] = time.time() - t0
print(json.dumps(marks))
"""


def startup(repeats: int) -> list[dict]:
    """Process start to first optimizer step, and where it goes (fresh interpreters, as a
    user's, CI's and every sweep job's: PYTHONDONTWRITEBYTECODE=1, so no .pyc is written
    on the way and only those the install compiled count)."""
    env = child_env(os.environ, PYTHONDONTWRITEBYTECODE="1")
    results = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            proc = run_timed(
                [sys.executable, "-c", STARTUP_PROBE, repr(time.time()), str(ROOT), out], env
            )
        _check(proc, "the start-up probe")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    label = _bytecode_label()
    rows, previous = [], 0.0
    for mark in results[0]:
        at = median([r[mark] for r in results])
        last = mark == "first optimizer step done"
        rows.append(
            {
                "what": f"start-up: {mark}" + (f" ({label})" if last else ""),
                "value": at,
                "goal": "<= 4 s" if last else "",
                "detail": f"+{at - previous:.2f} s, median of {repeats}",
            }
        )
        previous = at
    return rows


def default_run(repeats: int) -> list[dict]:
    """`python scripts/train.py` as a user types it (1000 steps, no progress bar), from
    command to exit, in fresh processes; and the peak RSS of the median run."""
    env = child_env(os.environ, PYTHONDONTWRITEBYTECODE="1")
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            proc = run_timed(
                [
                    sys.executable,
                    TRAIN,
                    "trainer.enable_progress_bar=false",
                    f"hydra.run.dir={out}",
                ],
                env,
            )
        _check(proc, "the default run")
        runs.append(proc)
    runs.sort(key=lambda r: r.wall_s)
    mid = runs[len(runs) // 2]
    return [
        {
            "what": f"default run, command to exit (s) ({_bytecode_label()})",
            "value": mid.wall_s,
            "goal": "<= 20 s",
            "detail": f"python scripts/train.py, median of {repeats}",
        },
        {
            "what": "default run: peak RSS (MiB)",
            "value": mid.peak_rss_mib,
            "goal": "report",
            "detail": "the median run's own peak",
        },
    ]


def quick_exit_rows(repeats: int) -> list[dict]:
    """`--help` and a config error answer before torch loads."""
    rows = []
    for what, args, code in [
        ("`scripts/train.py --help`", ["--help"], 0),
        ("a config error (`task=nonsense`)", ["task=nonsense"], 1),
    ]:
        walls = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as out:
                proc = run_timed([sys.executable, TRAIN, *args], cwd=out)
            if (proc.returncode == 0) != (code == 0):
                _check(proc, what)
            walls.append(proc.wall_s)
        rows.append(
            {
                "what": f"{what}: wall time (s)",
                "value": median(walls),
                "goal": "<= 1 s",
                "detail": f"median of {repeats}",
            }
        )
    return rows


THREADS_PROBE = r"""
import json, sys
threads = json.loads(sys.argv[1])
import torch
if threads:
    torch.set_num_threads(threads)
sys.path.insert(0, sys.argv[2]); import src.bench.timed_loops as b
seconds = b.lightning_seconds_per_step(["~callbacks"], int(sys.argv[3]), int(sys.argv[4]), None)
print(json.dumps({"it_s": 1 / seconds, "threads": torch.get_num_threads()}))
"""


def _its_in_fresh_process(arm: str, steps: int, warmup: int, loaded: bool) -> float:
    """Default-shape training it/s in a fresh process whose thread settings are set before
    torch loads: `old` = torch's defaults, `policy` = src.preflight.threads.thread_policy."""
    env = child_env(os.environ)
    threads = None
    if arm == "policy":
        policy = thread_policy(None, None, available_cpus(), env)
        threads = policy.threads
    cmd = [
        sys.executable,
        "-c",
        THREADS_PROBE,
        json.dumps(threads),
        str(ROOT),
        str(steps),
        str(warmup),
    ]
    if loaded:
        with busy_process(max_seconds=900):
            proc = run_timed(cmd, env)
    else:
        proc = run_timed(cmd, env)
    _check(proc, f"the {arm} threads probe")
    return json.loads(proc.stdout.strip().splitlines()[-1])["it_s"]


def thread_rows(quick: bool, repeats: int) -> list[dict]:
    """Idle and under one competing busy process, torch's default threads against the
    thread policy; every figure from its own fresh process, arms alternated."""
    steps, warmup = (40, 5) if quick else (200, 20)
    # --quick leaves out the old default under load (the "(before)" row): a fresh process
    # each is ~7 s of a minute
    pairs = [("old", "idle"), ("policy", "idle"), ("policy", "loaded")]
    if not quick:
        pairs.insert(1, ("old", "loaded"))
    arms = {
        f"{arm} {load}": (
            lambda arm=arm, load=load: _its_in_fresh_process(arm, steps, warmup, load == "loaded")
        )
        for arm, load in pairs
    }
    its = {name: median(v) for name, v in alternate(arms, repeats).items()}
    names = {"old": "torch default threads", "policy": "thread policy"}
    rows = [
        {
            "what": f"train it/s, default shape, {load}, {names[arm]}",
            "value": its[f"{arm} {load}"],
            "goal": "",
            "detail": f"{steps} steps, median of {repeats}"
            + (", one busy process beside it" if load == "loaded" else ""),
        }
        for arm, load in pairs
    ]
    for arm in [arm for arm, load in pairs if load == "loaded"]:
        rows.append(
            {
                "what": f"it/s under one busy process / idle, {names[arm]}",
                "value": ratio(its[f"{arm} loaded"], its[f"{arm} idle"]),
                "goal": ">= 0.5" if arm == "policy" else "(before)",
                "detail": "",
            }
        )
    rows.append(
        {
            "what": "idle it/s, thread policy / torch default threads",
            "value": ratio(its["policy idle"], its["old idle"]),
            "goal": ">= 0.95",
            "detail": thread_policy(None, None, available_cpus(), {}).why,
        }
    )
    return rows


def _check(proc, what: str) -> None:
    if proc.returncode != 0:
        sys.exit(f"error: {what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# GPT-2 small's shape (d_model 768, 12 layers, 12 heads, T 1024) on the sort task, bf16-mixed.
GPU_SHAPE = [
    "model.net.d_model=768",
    "model.net.layers=12",
    "heads=12",
    "task=sort",
    "task.length=512",  # sort's sequences are 2 * length tokens: T = 1024
    "data.batch_size=16",
    "trainer=gpu",
    "~callbacks",
]
# The same code path on CPU at a size a test can afford.
GPU_ON_CPU_TINY_SHAPE = [
    "model.net.d_model=32",
    "model.net.layers=2",
    "heads=2",
    "task=sort",
    "task.length=16",
    "data.batch_size=4",
    "trainer.precision=bf16-mixed",
    "~callbacks",
]


def gpu_shape(tiny: bool) -> tuple[list[str], str]:
    """The --gpu mode's overrides and device; `tiny`: its code path on CPU."""
    return (GPU_ON_CPU_TINY_SHAPE, "cpu") if tiny else (GPU_SHAPE, "cuda")


def gpu_rows(tiny: bool, peak_override: float | None, quick: bool, compile_arm: bool = True):
    """Tokens/s and MFU at GPT-2 small's shape: plain loop, Lightning, Lightning compiled.
    `tiny`: the same path on CPU with GPU_ON_CPU_TINY_SHAPE (tests; no GPU at hand)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    overrides, device = gpu_shape(tiny)
    with tempfile.TemporaryDirectory() as out:
        cfg, parts = build_parts(overrides, out)
    net, task = parts.model.net.to(device), parts.task
    from src.data.datamodule import TaskStream

    batch = next(iter(TaskStream(task, cfg.data.batch_size, cfg.seed)))
    backend = check_sdpa_backend(net, batch.inputs.to(device), device)
    allowed = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    name = "CPU (tiny shape, code path only)" if tiny else torch.cuda.get_device_name()
    peak = peak_tflops_for(name, peak_override) if not tiny else (peak_override or 1.0)
    fpt = model_flops_per_token(net, task.seq_len)
    tokens = cfg.data.batch_size * task.seq_len
    steps, warmup = (3, 1) if tiny else ((20, 5) if quick else (100, 10))
    arms = {
        "plain loop": lambda: plain_seconds_per_step(overrides, steps, warmup, device=device)[0],
        "Lightning": lambda: lightning_seconds_per_step(overrides, steps, warmup, None),
    }
    if compile_arm:
        arms["plain loop, compiled"] = lambda: plain_seconds_per_step(
            overrides, steps, warmup, compile_model=True, device=device
        )[0]
        arms["Lightning, compile=true"] = lambda: lightning_seconds_per_step(
            overrides, steps, warmup, None, compile_model=True
        )
    # Alternated rounds, medians: measured once each in this fixed order on an H200, the
    # last arm (Lightning compiled) came out at 0.93-0.94 of the plain loop in three runs;
    # in two alternated rounds of the same arms, 0.98 (README, Performance on a GPU).
    repeats = 1 if tiny or quick else 2
    with sdpa_kernel(allowed):  # the math fallback raises instead of running
        samples = alternate(arms, repeats)
    seconds_per_step = {arm: median(times) for arm, times in samples.items()}
    import lightning

    versions = f"torch {torch.__version__}, lightning {lightning.__version__}"
    rows = [
        {
            "what": f"GPU shape: SDPA backend ({name})",
            "value": backend,
            "goal": "flash or memory-efficient",
            "detail": f"math fallback disabled while measuring; {versions}",
        }
    ]
    for arm, seconds in seconds_per_step.items():
        tps = tokens / seconds
        value = mfu(tps, fpt, peak) if peak else float("nan")
        rows.append(
            {
                "what": f"GPU shape, {arm}: MFU",
                "value": value,
                "goal": ">= 0.4" if arm.endswith("compile=true") else "",
                "detail": f"{tps:,.0f} tokens/s, {1e3 * seconds:.1f} ms/step, {fpt:,} "
                "FLOPs/token, peak "
                + (f"{peak:g} TFLOP/s" if peak else "unknown: pass --peak-tflops"),
            }
        )
    pairs = [("eager", "plain loop", "Lightning", "")]
    if compile_arm:
        pairs.append(("compiled", "plain loop, compiled", "Lightning, compile=true", ">= 0.97"))
    for label, plain_arm, lightning_arm, goal in pairs:
        rows.append(
            {
                "what": f"GPU shape: Lightning / plain loop tokens/s, {label}",
                "value": ratio(seconds_per_step[plain_arm], seconds_per_step[lightning_arm]),
                "goal": goal,
                "detail": f"{steps} steps after {warmup} warm-up, median of {repeats} "
                "alternated runs",
            }
        )
    return rows


def preflight(extra: list[str], gpu: bool) -> None:
    """Every shape this run will build fits memory, or the bench stops before any work."""
    from src.preflight.checks import ConfigError, check_values
    from src.preflight.memory import check_memory, estimate_memory
    from src.training.build import instantiate

    shapes = {"GPU": GPU_SHAPE} if gpu else {k: v + extra for k, v in SHAPES.items()}
    for shape, overrides in shapes.items():
        with tempfile.TemporaryDirectory() as out:
            try:
                cfg = compose(overrides)
                with open_dict(cfg):
                    cfg.paths.output_dir = out
                check_values(cfg)
                task = instantiate(cfg.task, "task")
                check_memory(cfg, estimate_memory(cfg, task.vocab_size, task.seq_len))
            except ConfigError as err:
                print(f"error: the {shape} shape cannot run: {err}", file=sys.stderr)
                sys.exit(EXIT_BAD_INPUT)


SWEEP = [
    "heads=1,2",
    "scale=true,false",
    "trainer.max_steps=300",
    "trainer.val_check_interval=100",
    "trainer.enable_progress_bar=false",
]


def _wall_seconds(*args: str) -> float:
    """Wall time of `python scripts/train.py ARGS` in a fresh folder, start-up included."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
            cwd=out,
            capture_output=True,
            check=True,
        )
        return time.perf_counter() - start


def sweep_rows() -> list[dict]:
    """The same 4-job sweep under each launcher, and one run on 1 vs 2 DDP processes."""
    basic = _wall_seconds("-m", *SWEEP)
    rows = [
        {
            "what": "4-job sweep, 300 steps each: basic launcher (s)",
            "value": basic,
            "goal": "",
            "detail": "one job after another, in one process",
        }
    ]
    for name, launcher in [
        ("joblib, 2 at a time", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]),
        (
            "submitit_local, 1 core each",
            ["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1"],
        ),
    ]:
        wall = _wall_seconds("-m", *launcher, *SWEEP)
        rows.append(
            {
                "what": f"4-job sweep: basic / {name}",
                "value": basic / wall,
                "goal": "> 1 is faster",
                "detail": f"{wall:.1f} s",
            }
        )
    single = ["trainer.max_steps=300", "trainer.enable_progress_bar=false"]
    one, two = _wall_seconds(*single), _wall_seconds("trainer=ddp", *single)
    rows.append(
        {
            "what": "one run, 300 steps: 1 process / DDP on 2 processes",
            "value": one / two,
            "goal": "> 1 is faster",
            "detail": f"{one:.1f} s vs {two:.1f} s, start-up included",
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, under a minute")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--sweeps", action="store_true", help="only the scale-out rows")
    parser.add_argument(
        "--shape",
        nargs="+",
        default=[],
        metavar="OVERRIDE",
        help="config overrides added to every CPU shape, e.g. model.net.layers=4",
    )
    parser.add_argument(
        "--gpu", action="store_true", help="only the GPU rows, GPT-2 small's shape (needs CUDA)"
    )
    parser.add_argument(
        "--gpu-on-cpu-tiny",
        action="store_true",
        help="the --gpu code path on CPU at a tiny shape (a test of the mode, not a figure)",
    )
    parser.add_argument(
        "--gap",
        action="store_true",
        help="with --gpu: also the Lightning gap's parts at that shape (eager, ~2 min)",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="the device's dense bf16 peak in TFLOP/s, for MFU (default: a table of known GPUs)",
    )
    args = parser.parse_args()
    if args.gap and not (args.gpu or args.gpu_on_cpu_tiny):
        parser.error("--gap profiles the GPU shape: use it with --gpu or --gpu-on-cpu-tiny")
    if args.sweeps:
        _report(sweep_rows(), "sweeps", args.json)
        return
    if args.gpu or args.gpu_on_cpu_tiny:
        tiny = args.gpu_on_cpu_tiny
        if not tiny:
            import torch

            if not torch.cuda.is_available():
                print(
                    "error: --gpu needs an NVIDIA GPU (CUDA), and torch sees none here "
                    f"(torch {torch.__version__}, CUDA build {torch.version.cuda}). Run it on "
                    "a machine with one; --gpu-on-cpu-tiny runs the same code on CPU.",
                    file=sys.stderr,
                )
                sys.exit(EXIT_BAD_INPUT)
            preflight([], gpu=True)
        rows = gpu_rows(tiny, args.peak_tflops, args.quick, compile_arm=not tiny or args.compile)
        if args.gap:  # the Lightning gap's parts at this shape, eager
            # 40 steps an arm: a GPU's step times vary far less than a shared CPU's
            rows += lightning_gap_rows(True, 1 if tiny else 2, *gpu_shape(tiny), "GPU shape: ")
        _report(rows, "gpu-on-cpu-tiny" if tiny else "gpu", args.json)
        return
    preflight(args.shape, gpu=False)
    repeats = 1 if args.quick else 3
    rows = []
    step_time = {}
    shapes = {"default": SHAPES["default"]} if args.quick else SHAPES
    for shape, overrides in shapes.items():
        steps, warmup = (40, 5) if args.quick else ((300, 20) if shape == "default" else (20, 3))
        base = overrides + args.shape + ["~callbacks"]
        times = alternate(
            {
                "plain": lambda b=base, s=steps, w=warmup: plain_seconds_per_step(b, s, w)[0],
                "lightning": lambda b=base, s=steps, w=warmup: lightning_seconds_per_step(
                    b, s, w, None
                ),
            },
            repeats,
        )
        with tempfile.TemporaryDirectory() as out:
            cfg, parts = build_parts(base, out)
        tokens = cfg.data.batch_size * parts.task.seq_len
        p, lt = median(times["plain"]), median(times["lightning"])
        step_time[shape] = p
        rows.append(
            {
                "what": f"train tokens/s, Lightning / plain loop ({shape})",
                "value": p / lt,
                "goal": ">= 0.95" if shape == "default" else ">= 0.97",
                "detail": f"{tokens / lt:,.0f} vs {tokens / p:,.0f} tokens/s",
            }
        )
    if not args.quick:
        rows += lightning_gap_rows(args.quick, repeats)
    rows += attention_rows(args.quick)
    rows.append(data_share(["~callbacks"], step_time["default"], args.quick))

    steps = 60 if args.quick else 500
    for callback, what in [
        ("AttentionDiagnostics", "diagnostics overhead at default frequency"),
        ("NonFiniteGuard", "non-finite guard overhead (checks every step)"),
    ]:
        times = alternate(
            {
                "without": lambda: lightning_seconds_per_step([], steps, 1, None),
                "with": lambda c=callback: lightning_seconds_per_step([], steps, 1, c),
            },
            repeats,
        )
        rows.append(
            {
                "what": f"{what} ({steps} steps)",
                "value": median(times["with"]) / median(times["without"]) - 1,
                "goal": "<= 0.05",
                "detail": "share of training time",
            }
        )
    rows += thread_rows(args.quick, repeats)
    rows += startup(repeats)
    if not args.quick:
        rows += default_run(repeats)
    rows += quick_exit_rows(repeats)
    if args.compile:
        eager, eager_first = plain_seconds_per_step(["~callbacks"], 200, 20)
        compiled, compile_first = plain_seconds_per_step(["~callbacks"], 200, 20, True)
        rows.append(
            {
                "what": "torch.compile: steady step time, eager / compiled (default)",
                "value": eager / compiled,
                "goal": "> 1 is faster",
                "detail": f"first step {compile_first:.1f} s (compile) vs {eager_first:.2f} s",
            }
        )

    _report(rows, "quick" if args.quick else "full", args.json)


def _report(rows: list[dict], kind: str, json_path: Path | None) -> None:
    import torch

    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"\nattnlab bench ({kind}), {machine}\n")
    print("| what | value | goal | met | detail |\n|---|---|---|---|---|")
    for row in rows:
        print(format_row(row))
    if json_path:
        json_path.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
