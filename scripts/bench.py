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
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def build_parts(overrides: list[str], output_dir: str):
    from omegaconf import open_dict

    from src.train import build

    cfg = compose(overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = output_dir
    return cfg, build(cfg)


class StepTimer:
    """A Lightning callback recording when each training step ends."""

    def __init__(self):
        import lightning as L

        timer = self

        class _Callback(L.Callback):
            def on_train_batch_end(self, *args, **kwargs):
                timer.ends.append(time.perf_counter())

        self.ends: list[float] = []
        self.callback = _Callback()


def lightning_seconds_per_step(overrides, steps, warmup, callback: str | None) -> float:
    """Steady-state seconds per step of the real Trainer, as a default run configures it,
    with one of the default config's callbacks (by class name) or none."""
    import lightning as L

    with tempfile.TemporaryDirectory() as out:
        cfg, parts = build_parts(overrides + [f"trainer.max_steps={steps + warmup}"], out)
        timer = StepTimer()
        callbacks = [timer.callback]
        if callback:
            callbacks += [c for c in parts["trainer"].callbacks if type(c).__name__ == callback]
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=steps + warmup,
            logger=parts["trainer"].logger,
            callbacks=callbacks,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            log_every_n_steps=cfg.trainer.log_every_n_steps,
        )
        trainer.fit(parts["model"], datamodule=parts["datamodule"])
    return (timer.ends[-1] - timer.ends[warmup - 1]) / steps


def plain_seconds_per_step(overrides, steps, warmup, compile_model=False) -> tuple[float, float]:
    """The same model, batches, AdamW and schedule in a hand-written loop.

    Returns (seconds per steady step, seconds for the first step)."""
    import torch

    from src.data.datamodule import TaskStream
    from src.lit_module import adamw_with_schedule
    from src.modules import masked_cross_entropy

    with tempfile.TemporaryDirectory() as out:
        cfg, parts = build_parts(overrides, out)
    module, task = parts["model"], parts["task"]
    net = module.net
    total = steps + warmup
    optimizer, scheduler = adamw_with_schedule(net, total, **module.hparams)
    model = torch.compile(net) if compile_model else net
    stream = iter(TaskStream(task, cfg.data.batch_size, cfg.seed))
    ends = []
    start = time.perf_counter()
    for _ in range(total):
        batch = next(stream)
        logits, _ = model(batch.inputs)
        loss = masked_cross_entropy(logits, batch.targets, batch.loss_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss.item()  # what a loop that prints its loss pays for
        ends.append(time.perf_counter())
    return (ends[-1] - ends[warmup - 1]) / steps, ends[0] - start


def _attention_timings(B: int, T: int, d: int, h: int, budget: float) -> dict[str, float]:
    """Median seconds of forward+backward for each path, measured in interleaved rounds."""
    import torch
    import torch.nn.functional as F
    from torch.utils.benchmark import Timer

    from src.modules import MultiHeadAttention

    torch.manual_seed(0)
    mha = MultiHeadAttention(d, h)
    x = torch.randn(B, T, d, requires_grad=True)
    hs = d // h

    def direct():  # the same projections and F.scaled_dot_product_attention, inline
        q = F.linear(x, mha.query.weight).view(B, T, h, hs).transpose(1, 2)
        k = F.linear(x, mha.key.weight).view(B, T, h, hs).transpose(1, 2)
        v = F.linear(x, mha.value.weight).view(B, T, h, hs).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=mha.scale)
        F.linear(y.transpose(1, 2).reshape(B, T, d), mha.out.weight).sum().backward()

    def fast():
        mha(x)[0].sum().backward()

    def explicit():
        mha(x, need_weights=True)[0].sum().backward()

    samples: dict[str, list[float]] = {"direct": [], "fast": [], "explicit": []}
    for _ in range(3):
        for label, fn in (("direct", direct), ("fast", fast), ("explicit", explicit)):
            fn()  # warm up
            timer = Timer("fn()", globals={"fn": fn})
            samples[label].append(timer.blocked_autorange(min_run_time=budget / 3).median)
    return {label: statistics.median(times) for label, times in samples.items()}


def attention_rows(quick: bool) -> list[dict]:
    """Forward+backward of MultiHeadAttention's two paths against direct SDPA."""
    shapes = {"default": (64, 16, 64, 4), "large": (16, 256, 256, 8)}
    rows = []
    for name, (B, T, d, h) in list(shapes.items())[: 1 if quick else 2]:
        t = _attention_timings(B, T, d, h, budget=0.3 if quick else 1.5)
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


def data_share(overrides, step_seconds: float) -> dict:
    from torch.utils.benchmark import Timer

    from src.data.datamodule import TRAIN_STREAM, task_batch

    with tempfile.TemporaryDirectory() as out:
        cfg, parts = build_parts(overrides, out)
    task, size = parts["task"], cfg.data.batch_size
    counter = iter(range(10**9))
    sample = Timer(
        "fn()", globals={"fn": lambda: task_batch(task, size, 0, TRAIN_STREAM, next(counter))}
    )
    seconds = sample.blocked_autorange(min_run_time=0.5).median
    return {
        "what": "data generator / training step (default)",
        "value": seconds / step_seconds,
        "goal": "<= 0.02",
        "detail": f"{seconds * 1e6:.0f} us per batch",
    }


def startup(quick: bool) -> list[dict]:
    """Process start to first optimizer step, and where it goes (a fresh interpreter)."""
    probe = r"""
import time, sys, json
t0 = float(sys.argv[1]); marks = {"interpreter up": time.time() - t0}
import torch; marks["import torch"] = time.time() - t0
import lightning; marks["import lightning"] = time.time() - t0
sys.path.insert(0, sys.argv[2]); import scripts.bench as b
cfg, parts = b.build_parts(["trainer.max_steps=1", "trainer.enable_progress_bar=false",
                            "trainer.enable_model_summary=false", "~callbacks", "~logger"],
                           sys.argv[3])
marks["compose config + build model, data, trainer"] = time.time() - t0
parts["trainer"].fit(parts["model"], datamodule=parts["datamodule"])
marks["first optimizer step done"] = time.time() - t0
print(json.dumps(marks))
"""
    results = []
    for _ in range(1 if quick else 3):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.time()
            proc = subprocess.run(
                [sys.executable, "-c", probe, repr(t0), str(ROOT), out],
                capture_output=True,
                text=True,
                check=True,
            )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows, previous = [], 0.0
    for mark in results[0]:
        at = statistics.median(r[mark] for r in results)
        rows.append(
            {
                "what": f"start-up: {mark}",
                "value": at,
                "goal": "",
                "detail": f"+{at - previous:.2f} s",
            }
        )
        previous = at
    if quick:
        rows.append(
            {
                "what": "start-up probe: peak RSS (MiB)",
                "value": peak_mib,
                "goal": "",
                "detail": "1 step; the full run reports the default run's",
            }
        )
    return rows


def default_run(steps: int) -> list[dict]:
    """The real script in a subprocess: wall time and peak resident memory."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "train.py"),
                f"trainer.max_steps={steps}",
                "trainer.enable_progress_bar=false",
                f"hydra.run.dir={out}",
            ],
            capture_output=True,
            check=True,
        )
        wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return [
        {
            "what": f"default run, {steps} steps: wall time (s)",
            "value": wall,
            "goal": "",
            "detail": "python scripts/train.py, process start to exit",
        },
        {"what": "default run: peak RSS (MiB)", "value": peak_mib, "goal": "", "detail": ""},
    ]


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
    args = parser.parse_args()
    if args.sweeps:
        _report(sweep_rows(), "sweeps", args.json)
        return
    repeats = 1 if args.quick else 3
    rows = []
    step_time = {}
    shapes = {"default": SHAPES["default"]} if args.quick else SHAPES
    for shape, overrides in shapes.items():
        steps, warmup = (40, 5) if args.quick else ((300, 20) if shape == "default" else (20, 3))
        base = overrides + ["~callbacks"]
        lightning_t, plain_t = [], []
        for _ in range(repeats):  # alternate, so drift hits both alike
            plain_t.append(plain_seconds_per_step(base, steps, warmup)[0])
            lightning_t.append(lightning_seconds_per_step(base, steps, warmup, None))
        with tempfile.TemporaryDirectory() as out:
            cfg, parts = build_parts(base, out)
        tokens = cfg.data.batch_size * parts["task"].seq_len
        p, lt = statistics.median(plain_t), statistics.median(lightning_t)
        step_time[shape] = p
        rows.append(
            {
                "what": f"train tokens/s, Lightning / plain loop ({shape})",
                "value": p / lt,
                "goal": ">= 0.95",
                "detail": f"{tokens / lt:,.0f} vs {tokens / p:,.0f} tokens/s",
            }
        )
    rows += attention_rows(args.quick)
    rows.append(data_share(["~callbacks"], step_time["default"]))

    steps = 60 if args.quick else 500
    for callback, what in [
        ("AttentionDiagnostics", "diagnostics overhead at default frequency"),
        ("NonFiniteGuard", "non-finite guard overhead (checks every step)"),
    ]:
        with_c, without_c = [], []
        for _ in range(repeats):
            without_c.append(lightning_seconds_per_step([], steps, 1, None))
            with_c.append(lightning_seconds_per_step([], steps, 1, callback))
        rows.append(
            {
                "what": f"{what} ({steps} steps)",
                "value": statistics.median(with_c) / statistics.median(without_c) - 1,
                "goal": "<= 0.05",
                "detail": "share of training time",
            }
        )
    rows += startup(args.quick)
    if not args.quick:
        rows += default_run(1000)
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
    print("| what | value | goal | detail |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['what']} | {row['value']:.3g} | {row['goal']} | {row['detail']} |")
    if json_path:
        json_path.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
