"""Position information. Without it attention is permutation-equivariant (SEED.md, point 2)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

POSITIONAL_KINDS = ("learned", "sinusoidal", "none")


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


def make_positional(kind: str, max_seq_len: int, d_model: int) -> nn.Module | None:
    """`learned` (an embedding per position), `sinusoidal`, or `none` (returns None)."""
    if kind == "learned":
        return nn.Embedding(max_seq_len, d_model)
    if kind == "sinusoidal":
        return SinusoidalPositions(max_seq_len, d_model)
    if kind == "none":
        return None
    raise ValueError(
        f"positional={kind!r} is not allowed: use one of {', '.join(POSITIONAL_KINDS)}."
    )
