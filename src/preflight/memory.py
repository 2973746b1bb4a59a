"""Will this run fit in memory? An estimate from the config alone, before anything is built.

torch is imported only to ask a GPU for its free memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from omegaconf import DictConfig

from src.preflight.checks import ConfigError
from src.validation import is_int


@dataclass
class MemoryEstimate:
    """What a run will hold in memory, from the config alone (float32)."""

    params: int
    state_bytes: int  # weights, gradients and AdamW's two moments
    activation_bytes: int  # one training step's saved activations, logits and attention maps
    map_bytes: int  # the part of activation_bytes that grows with T*T
    seq_len: int

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.activation_bytes

    def summary(self) -> str:
        return f"{self.params:,} params, ~{self.activation_bytes / 2**20:,.0f} MiB for activations"


def estimate_memory(cfg: DictConfig, vocab_size: int, seq_len: int) -> MemoryEstimate | None:
    """Parameters and activation memory of the run `cfg` describes, before building it.

    Activations: per layer and token the residual stream, its norms, q/k/v and the MLP's
    hidden units; the (B, nh, T, T) attention weights of training, and the probe's weights
    and logits (AttentionDiagnostics). None when a size is invalid: its constructor says so.
    """
    net, B = cfg.model.net, cfg.data.get("batch_size")
    d, layers, heads, ratio = net.d_model, net.layers, net.heads, net.get("mlp_ratio", 4)
    from src.modules.config import head_size  # torch comes with src.modules; not at import

    table = net.get("max_seq_len") or seq_len
    if not all(is_int(v) and v > 0 for v in (d, layers, heads, ratio, table, B)):
        return None
    head_dim = head_size(d, heads, net.get("head_dim"))
    if not (is_int(head_dim) and head_dim > 0):
        return None
    inner = heads * head_dim
    per_block = 4 * d * inner + 2 * ratio * d * d + 2 * d
    if net.get("bias"):
        per_block += 3 * inner + 4 * d + ratio * d  # q, k, v, W_o, MLP, two norms
    positions = table * d if net.get("positional") == "learned" else 0
    params = vocab_size * d + positions + layers * per_block + d * (2 if net.get("bias") else 1)
    T = seq_len
    probe = (cfg.get("callbacks") or {}).get("attention_diagnostics") or {}
    probe_examples = min(probe.get("probe_examples", 0) or 0, cfg.data.get("val_size") or 0)
    per_token = layers * (6 * d + 4 * inner + 2 * ratio * d) + 3 * vocab_size
    maps = layers * heads * T * T * (B + 2 * probe_examples)
    floats = B * T * per_token + maps
    return MemoryEstimate(params, 4 * 4 * params, 4 * floats, 4 * maps, T)


def available_memory(accelerator: str) -> tuple[int | None, str]:
    """Bytes this run may use, and where: the GPU's free memory, or the machine's RAM."""
    if accelerator in ("gpu", "cuda", "auto"):
        import torch  # only for GPUs

        if torch.cuda.is_available():
            return torch.cuda.mem_get_info()[0], "free on the GPU"
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available on this machine"
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free on this machine"
    except (ValueError, OSError, AttributeError):
        return None, "unknown"


def check_memory(cfg: DictConfig, estimate: MemoryEstimate | None) -> None:
    """Refuse a run that would not fit, before it allocates (and swaps, or is OOM-killed)."""
    if estimate is None:
        return
    limit, where = available_memory(str(cfg.trainer.get("accelerator")))
    if limit is None or estimate.total_bytes <= limit:
        return
    net, T = cfg.model.net, estimate.seq_len
    task_sizes = ", ".join(
        f"task.{k}={v}" for k, v in cfg.task.items() if k != "_target_" and type(v) is int
    )
    # Name first the knob furthest above this project's defaults: the one most likely mistyped.
    knobs = [
        (net.layers / 2, f"model.net.layers={net.layers}"),
        (net.d_model / 64, f"model.net.d_model={net.d_model}"),
        (cfg.data.batch_size / 64, f"data.batch_size={cfg.data.batch_size}"),
        (T / 16, f"the task's sequence length ({T} tokens: {task_sizes})"),
    ]
    knobs.sort(key=lambda k: -k[0])
    gib = 2**30
    raise ConfigError(
        f"this run would need ~{estimate.total_bytes / gib:,.1f} GiB of memory, more than the "
        f"{limit / gib:,.1f} GiB {where}: {estimate.params:,} params (~"
        f"{estimate.state_bytes / gib:,.1f} GiB with gradients and AdamW state) and ~"
        f"{estimate.activation_bytes / gib:,.1f} GiB of activations a step (of which "
        f"{estimate.map_bytes / gib:,.1f} GiB attention maps). Lower {knobs[0][1]} (or "
        f"{', '.join(k[1] for k in knobs[1:])})."
    )
