"""Position information. Without it, and without the causal mask, attention is
permutation-equivariant: shuffle the tokens and the outputs shuffle the same way (the
tutorial's demonstration 2, tested in tests/unit/test_model.py).

Two ways in: an additive table added to the token embeddings (`learned`, `sinusoidal`;
`make_positional`), or rotary positions (`rope`) that rotate q and k inside every attention
layer (`make_rotary`), so that q.k depends on the positions only through their difference.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from src.validation import check_positive_number, require

if TYPE_CHECKING:
    from src.modules.config import ModelConfig

POSITIONAL_KINDS = ("learned", "sinusoidal", "rope", "none")


class SinusoidalPositions(nn.Module):
    """Fixed sin/cos table of Vaswani et al.: nothing to learn, defined for every position."""

    def __init__(self, max_seq_len: int, d_model: int) -> None:
        super().__init__()
        position = torch.arange(max_seq_len).unsqueeze(1)  # (T, 1)
        freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))  # (d/2,)
        table = torch.zeros(max_seq_len, d_model)
        table[:, 0::2] = torch.sin(position * freq)
        table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
        self.register_buffer("table", table, persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        return self.table[positions]  # (T, d_model)


class RotaryPositions(nn.Module):
    """RoFormer's rotary positions (Su et al. 2021), applied to q and k of each head.

    Each pair of dimensions (x_2i, x_2i+1) at position t is rotated by the angle t * theta_i,
    theta_i = base^(-2i/head_dim). Rotating q_m and k_n that way turns q.k into
    q R(n - m) k: the logits depend on the positions only through their difference. The
    cos/sin table is a non-persistent buffer, so rope adds no parameters and nothing to a
    checkpoint.
    """

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 10000.0) -> None:
        super().__init__()
        require(
            head_dim % 2 == 0,
            f"head_dim={head_dim} is not allowed with positional='rope': rope rotates pairs "
            "of dimensions, so the head size must be even.",
        )
        check_positive_number("rope_base", base, "RoFormer uses 10000.")
        theta = float(base) ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angle = torch.arange(max_seq_len, dtype=torch.float64).unsqueeze(1) * theta  # (T, hs/2)
        self.register_buffer("cos", angle.cos().float(), persistent=False)
        self.register_buffer("sin", angle.sin().float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., T, hs) at positions 0..T-1 -> the same shape, each pair rotated."""
        T = x.size(-2)
        require(
            self.cos.size(0) >= T,
            f"sequence length {T} is longer than the rotary table ({self.cos.size(0)} "
            "positions, max_seq_len).",
        )
        cos, sin = self.cos[:T], self.sin[:T]  # (T, hs/2)
        even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, hs/2): the pairs' two coordinates
        rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
        return rotated.flatten(-2).type_as(x)  # (..., T, hs), pairs interleaved again


def make_positional(config: ModelConfig) -> nn.Module | None:
    """The additive table: `learned` (an embedding per position) or `sinusoidal`; None for
    `rope` (its positions enter through attention, make_rotary) and `none`."""
    kind = config.positional
    if kind == "learned":
        return nn.Embedding(config.max_seq_len, config.d_model)
    if kind == "sinusoidal":
        return SinusoidalPositions(max_seq_len=config.max_seq_len, d_model=config.d_model)
    if kind in ("rope", "none"):
        return None
    raise ValueError(
        f"positional={kind!r} is not allowed: use one of {', '.join(POSITIONAL_KINDS)}."
    )


def make_rotary(config: ModelConfig) -> RotaryPositions | None:
    """The rotation an attention layer applies to q and k: RotaryPositions for `rope`, else None."""
    if config.positional != "rope":
        return None
    return RotaryPositions(
        head_dim=config.head_size, max_seq_len=config.max_seq_len, base=config.rope_base
    )
