"""The --gpu rows: tokens/s and MFU at GPT-2 small's shape for the plain loop and Lightning,
eager and compiled, arms alternated; the SDPA kernel that runs the shape (never the math
fallback). With `tiny`, the same code on CPU at a tiny shape (a test of the mode)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

from src.bench.measure import alternate, median, mfu, peak_tflops_for, ratio
from src.bench.shapes import gpu_shape
from src.bench.timed_loops import (
    build_parts,
    check_sdpa_backend,
    lightning_seconds_per_step,
    model_flops_per_token,
    plain_seconds_per_step,
)


def gpu_arms(
    overrides: list[str],
    device: str,
    steps: int,
    warmup: int,
    compile_arm: bool,
    log_every: Sequence[int] = (),
) -> tuple[dict, list[tuple[str, str, str, str]]]:
    """The arms (name -> a function returning seconds per step) and the (label, plain arm,
    Lightning arm, goal) pairs compared. `log_every`: also the pair (compiled, or eager
    without `compile_arm`) with `trainer.log_every_n_steps=N`, for each N."""

    def plain(shape, compiled):
        return lambda: plain_seconds_per_step(
            shape, steps, warmup, compile_model=compiled, device=device
        )[0]

    def lightning(shape, compiled):
        return lambda: lightning_seconds_per_step(
            shape, steps, warmup, None, compile_model=compiled
        )

    arms = {"plain loop": plain(overrides, False), "Lightning": lightning(overrides, False)}
    pairs = [("eager", "plain loop", "Lightning", "")]
    if compile_arm:
        arms["plain loop, compiled"] = plain(overrides, True)
        arms["Lightning, compile=true"] = lightning(overrides, True)
        pairs.append(("compiled", "plain loop, compiled", "Lightning, compile=true", ">= 0.97"))
    kind, plain_name, lightning_name = (
        ("compiled", "plain loop, compiled", "Lightning, compile=true")
        if compile_arm
        else ("eager", "plain loop", "Lightning")
    )
    for every in log_every:
        shape = overrides + [f"trainer.log_every_n_steps={every}"]
        names = (f"{plain_name}, log every {every}", f"{lightning_name}, log every {every}")
        arms[names[0]] = plain(shape, compile_arm)
        arms[names[1]] = lightning(shape, compile_arm)
        pairs.append((f"{kind}, log every {every} steps", *names, ""))
    return arms, pairs


def gpu_rows(
    tiny: bool,
    peak_override: float | None,
    quick: bool,
    compile_arm: bool = True,
    log_every: Sequence[int] = (),
) -> list[dict]:
    """Tokens/s and MFU at GPT-2 small's shape: plain loop, Lightning, Lightning compiled.
    `tiny`: the same path on CPU with GPU_ON_CPU_TINY_SHAPE (tests; no GPU at hand).
    `log_every`: also compare the pair at these logging intervals (see gpu_arms)."""
    import lightning
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from src.data.datamodule import TaskStream

    overrides, device = gpu_shape(tiny)
    with tempfile.TemporaryDirectory() as out:
        cfg, parts = build_parts(overrides, out)
    net, task = parts.model.net.to(device), parts.task
    batch = next(iter(TaskStream(task, cfg.data.batch_size, cfg.seed)))
    backend = check_sdpa_backend(net, batch.inputs.to(device), device)
    allowed = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    name = "CPU (tiny shape, code path only)" if tiny else torch.cuda.get_device_name()
    peak = peak_tflops_for(name, peak_override) if not tiny else (peak_override or 1.0)
    fpt = model_flops_per_token(net, task.seq_len)
    tokens = cfg.data.batch_size * task.seq_len
    steps, warmup = (3, 1) if tiny else ((20, 5) if quick else (100, 10))
    arms, pairs = gpu_arms(overrides, device, steps, warmup, compile_arm, log_every)
    # Alternated rounds, medians: measured once each in this fixed order on an H200, the
    # last arm (Lightning compiled) came out at 0.93-0.94 of the plain loop in three runs;
    # in two alternated rounds of the same arms, 0.98 (scripts/results/bench/README.md).
    repeats = 1 if tiny or quick else 2
    with sdpa_kernel(allowed):  # the math fallback raises instead of running
        samples = alternate(arms, repeats)
    seconds_per_step = {arm: median(times) for arm, times in samples.items()}

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
