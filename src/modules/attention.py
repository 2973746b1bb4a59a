"""Multi-head scaled dot-product attention with the 1/sqrt(d_k) scale as a switch.

Two paths give the same numbers: the fused `F.scaled_dot_product_attention` used for
training, and `explicit_attention`, which writes softmax(scale * q k^T + mask) v out so
that the weights (and the logits before the softmax) can be looked at.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.modules.config import ModelConfig
from src.modules.positional import make_rotary


class AttentionMaps(NamedTuple):
    """What the explicit path exposes for inspection, both (B, nh, T, T)."""

    weights: Tensor  # softmax over keys; each row sums to 1
    logits: Tensor  # scale * q k^T before the softmax, -inf where masked


def resolve_scale(scale: bool | float, head_dim: int) -> float:
    """Turn the `scale` switch into the factor that multiplies q.k.

    true -> 1/sqrt(d_k) (Vaswani et al.), false -> 1 (no scaling), a positive number ->
    that factor. The tutorial's softmax temperature is T = 1/scale.
    """
    if isinstance(scale, bool):
        return 1.0 / math.sqrt(head_dim) if scale else 1.0
    if isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0:
        return float(scale)
    raise ValueError(
        f"scale={scale!r} is not allowed: use true (multiply q.k by 1/sqrt(d_k)), "
        "false (factor 1, no scaling) or a positive number (that factor itself; the "
        "softmax temperature is T = 1/scale)."
    )


def causal_mask(T: int, device: torch.device | None = None) -> Tensor:
    """(T, T) boolean, True above the diagonal: the future keys a query may not see."""
    return torch.triu(torch.ones(T, T, dtype=torch.bool, device=device), diagonal=1)


def explicit_attention(
    q: Tensor, k: Tensor, v: Tensor, scale: float, causal: bool
) -> tuple[Tensor, AttentionMaps]:
    """softmax(scale * q k^T, masked) v, step by step. q, k: (..., T, d_k), v: (..., T, d_v)."""
    logits = scale * (q @ k.transpose(-2, -1))  # (..., T, T)
    if causal:
        logits = logits.masked_fill(causal_mask(q.size(-2), q.device), float("-inf"))
    weights = logits.softmax(dim=-1)  # (..., T, T), rows sum to 1
    return weights @ v, AttentionMaps(weights, logits)  # (..., T, d_v)


class MultiHeadAttention(nn.Module):
    """`heads` heads of size `head_dim` (default d_model/heads), projections W_q, W_k, W_v, W_o.

    Built from the model's ModelConfig; `from_dims` makes one on its own (tests, benchmarks).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heads, self.head_dim, self.causal = config.heads, config.head_size, config.causal
        self.scale = resolve_scale(config.scale, self.head_dim)
        inner, d_model, bias = self.heads * self.head_dim, config.d_model, config.bias
        self.query = nn.Linear(d_model, inner, bias=bias)  # W_q for all heads at once
        self.key = nn.Linear(d_model, inner, bias=bias)  # W_k
        self.value = nn.Linear(d_model, inner, bias=bias)  # W_v
        self.out = nn.Linear(inner, d_model, bias=bias)  # W_o mixes the concatenated heads
        self.rotary = make_rotary(config)  # rope: rotates q and k by position; else None

    @classmethod
    def from_dims(
        cls, d_model: int, heads: int, max_seq_len: int = 1024, **settings: Any
    ) -> MultiHeadAttention:
        """A standalone attention; `settings` are ModelConfig's other fields by name (head_dim,
        scale, causal, bias, positional, rope_base). `max_seq_len` bounds rope's table."""
        config = ModelConfig(
            vocab_size=1, max_seq_len=max_seq_len, d_model=d_model, heads=heads, **settings
        )
        return cls(config)

    def check_head_mask(self, head_mask: Tensor) -> None:
        if tuple(head_mask.shape) != (self.heads,):
            raise ValueError(
                f"head_mask has shape {tuple(head_mask.shape)}; this attention has "
                f"{self.heads} heads, so it must have shape ({self.heads},)."
            )

    def _split_heads(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)

    def forward(
        self, x: Tensor, need_weights: bool = False, head_mask: Tensor | None = None
    ) -> tuple[Tensor, AttentionMaps | None]:
        """x: (B, T, d_model) -> (B, T, d_model), plus the maps when `need_weights`.

        `head_mask` (nh,) multiplies each head's output before W_o: 0 knocks a head out
        (Michel et al. 2019), 1 keeps it; None is the plain forward.
        """
        B, T, _ = x.shape
        q = self._split_heads(self.query(x))  # (B, nh, T, hs)
        k = self._split_heads(self.key(x))  # (B, nh, T, hs)
        v = self._split_heads(self.value(x))  # (B, nh, T, hs)
        if self.rotary is not None:  # positions enter q.k here, on both paths below
            q, k = self.rotary(q), self.rotary(k)
        maps = None
        if need_weights:
            y, maps = explicit_attention(q, k, v, self.scale, self.causal)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=self.scale)
        if head_mask is not None:
            self.check_head_mask(head_mask)
            y = y * head_mask.to(y.dtype).view(1, self.heads, 1, 1)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, self.heads * self.head_dim)  # (B, T, nh*hs)
        return self.out(y), maps
