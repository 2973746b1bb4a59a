"""The --gpu-default-shape rows: attnlab's default model (~100k parameters) on an NVIDIA GPU,
where a step is hundreds of small kernel launches and the GPU mostly waits for the CPU.

Eager against CUDA graphs (torch.compile's `reduce-overhead` mode, `compile=reduce-overhead`)
in the plain loop and through Lightning, arms alternated; and one sweep of the default run
with several jobs sharing the GPU (joblib's n_jobs) against one job at a time, in runs per
minute. `on_cpu`: the same code on CPU at a few steps (a test of the mode, not a figure).
"""

from __future__ import annotations

from src.bench.measure import alternate, median, ratio
from src.bench.rows_sweeps import wall_seconds
from src.bench.timed_loops import lightning_seconds_per_step, plain_seconds_per_step

CUDA_GRAPHS = "reduce-overhead"


def step_rows(on_cpu: bool, quick: bool, compile_arm: bool) -> list[dict]:
    """ms per step at the default shape: plain loop and Lightning, eager and (with
    `compile_arm`) compiled with CUDA graphs; and each pair's eager / graphs ratio."""
    device = "cpu" if on_cpu else "cuda"
    shape = ["~callbacks"] + ([] if on_cpu else ["trainer=gpu"])
    steps, warmup = (4, 2) if on_cpu else ((60, 20) if quick else (400, 50))
    modes = {"eager": False} | ({CUDA_GRAPHS: CUDA_GRAPHS} if compile_arm else {})
    arms = {}
    for label, mode in modes.items():
        arms[f"plain loop, {label}"] = lambda m=mode: plain_seconds_per_step(
            shape, steps, warmup, compile_model=m, device=device
        )[0]
        arms[f"Lightning, {label}"] = lambda m=mode: lightning_seconds_per_step(
            shape, steps, warmup, None, compile_model=m
        )
    repeats = 1 if on_cpu or quick else 3
    ms = {name: median(v) * 1e3 for name, v in alternate(arms, repeats).items()}
    where = "CPU (code path only)" if on_cpu else "GPU"
    rows = [
        {
            "what": f"default shape on {where}, {name}: ms/step",
            "value": value,
            "goal": "",
            "detail": f"{steps} steps after {warmup} warm-up, median of {repeats} alternated",
        }
        for name, value in ms.items()
    ]
    if compile_arm:
        for loop in ("plain loop", "Lightning"):
            rows.append(
                {
                    "what": f"default shape on {where}, {loop}: eager / CUDA graphs step time",
                    "value": ratio(ms[f"{loop}, eager"], ms[f"{loop}, {CUDA_GRAPHS}"]),
                    "goal": "> 1 is faster",
                    "detail": f"compile={CUDA_GRAPHS}",
                }
            )
    return rows


def shared_gpu_sweep_rows(on_cpu: bool, quick: bool) -> list[dict]:
    """One sweep of the default run (8 seeds) one job at a time (the basic launcher, one
    process) and with joblib's n_jobs = 2, 4, 8 sharing the GPU: runs per minute, start-up
    included. Measured once each (a sweep is minutes long)."""
    jobs, steps = (2, 4) if on_cpu else ((4, 200) if quick else (8, 1000))
    counts = (2,) if on_cpu else ((2, 4) if quick else (2, 4, 8))
    sweep = [
        "-m",
        f"seed=range({jobs})",
        f"trainer.max_steps={steps}",
        "trainer.enable_progress_bar=false",
    ] + ([] if on_cpu else ["trainer=gpu"])
    where = "CPU (code path only)" if on_cpu else "one GPU"
    one = wall_seconds(*sweep)
    rows = [
        {
            "what": f"{jobs}-run sweep on {where}, one job at a time: runs/min",
            "value": jobs / one * 60,
            "goal": "",
            "detail": f"{one:.1f} s, basic launcher, {steps} steps each",
        }
    ]
    for n in counts:
        wall = wall_seconds(*sweep, "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n}")
        rows.append(
            {
                "what": f"{jobs}-run sweep on {where}, joblib n_jobs={n}: runs/min",
                "value": jobs / wall * 60,
                "goal": "",
                "detail": f"{wall:.1f} s; {one / wall:.2f}x one job at a time",
            }
        )
    return rows
