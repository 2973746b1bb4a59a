"""The bench's rows about the model's own speed on CPU: Lightning against a plain loop (and
where the gap goes), attention's paths against SDPA called directly, the data generator's
share of a step, the callbacks' overhead and torch.compile. Each function returns rows
({"what", "value", "goal", "detail"}); all of them run in this process."""

from __future__ import annotations

import tempfile
import time

from src.bench.measure import alternate, median
from src.bench.shapes import SHAPES
from src.bench.timed_loops import (
    attention_timings,
    build_parts,
    lightning_seconds_per_step,
    plain_seconds_per_step,
)


def train_ratio_rows(quick: bool, extra: list[str], repeats: int) -> tuple[list[dict], float]:
    """Training tokens/s of Lightning against the plain loop at each shape (`--quick`: the
    default shape only), arms alternated; `extra`: overrides added to every shape. Also
    returns the plain loop's seconds per step at the default shape (for data_share)."""
    rows, step_time = [], {}
    shapes = {"default": SHAPES["default"]} if quick else SHAPES
    for shape, overrides in shapes.items():
        steps, warmup = (40, 5) if quick else ((300, 20) if shape == "default" else (20, 3))
        base = overrides + extra + ["~callbacks"]
        # the default shape's ratio has a goal: 5 rounds there, since this VM drifts by 20%
        rounds = repeats + 2 if shape == "default" and repeats > 1 else repeats
        times = alternate(
            {
                "plain": lambda b=base, s=steps, w=warmup: plain_seconds_per_step(b, s, w)[0],
                "lightning": lambda b=base, s=steps, w=warmup: lightning_seconds_per_step(
                    b, s, w, None
                ),
            },
            rounds,
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
                "detail": f"{tokens / lt:,.0f} vs {tokens / p:,.0f} tokens/s, median of {rounds}",
            }
        )
    return rows, step_time["default"]


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
    return [
        {
            "what": f"{label}Lightning gap: {what} (ms/step)",
            "value": ms[arm] - ms[against],
            "goal": "(profile)",
            "detail": f"{ms[arm]:.2f} vs {ms[against]:.2f} ms/step, "
            f"{(ms[arm] - ms[against]) / ms['plain loop']:+.1%} of the plain step",
        }
        for what, arm, against in GAP_PARTS
    ]


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


def callback_overhead_rows(quick: bool, repeats: int) -> list[dict]:
    """The diagnostics' and the non-finite guard's share of training time, each with its
    callback against without, alternated."""
    steps = 60 if quick else 500
    rows = []
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
    return rows


def compile_row() -> dict:
    """torch.compile's steady step time against eager at the default shape (--compile)."""
    eager, eager_first = plain_seconds_per_step(["~callbacks"], 200, 20)
    compiled, compile_first = plain_seconds_per_step(["~callbacks"], 200, 20, True)
    return {
        "what": "torch.compile: steady step time, eager / compiled (default)",
        "value": eager / compiled,
        "goal": "> 1 is faster",
        "detail": f"first step {compile_first:.1f} s (compile) vs {eager_first:.2f} s",
    }
