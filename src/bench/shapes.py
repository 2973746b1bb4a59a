"""The shapes the bench measures (config overrides of the real configs), and the checks
that refuse a run before any measuring: every shape fits memory, --gpu has a GPU."""

from __future__ import annotations

import tempfile

from omegaconf import open_dict

from src.bench.errors import BadInput
from src.bench.timed_loops import compose

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


def preflight(extra: list[str], gpu: bool) -> None:
    """Every shape this run will build fits memory, or BadInput before any work. `extra`:
    the overrides added to every CPU shape (--shape)."""
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
                raise BadInput(f"the {shape} shape cannot run: {err}") from err


def require_cuda(mode: str = "--gpu", on_cpu: str = "--gpu-on-cpu-tiny") -> None:
    """BadInput unless torch sees an NVIDIA GPU (the GPU modes measure on one)."""
    import torch

    if not torch.cuda.is_available():
        raise BadInput(
            f"{mode} needs an NVIDIA GPU (CUDA), and torch sees none here "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}). Run it on "
            f"a machine with one; {on_cpu} runs the same code on CPU."
        )
