"""Multi-head scaled dot-product attention with the 1/sqrt(d_k) scale as a switch.

Two paths give the same numbers: the fused `F.scaled_dot_product_attention` used for
training, and `explicit_attention`, which writes softmax(scale * q k^T + mask) v out so
that the weights (and the logits before the softmax) can be looked at.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}={value!r} is not allowed: it must be a positive integer.")


class MultiHeadAttention(nn.Module):
    """`heads` heads of size `head_dim` (default d_model/heads), projections W_q, W_k, W_v, W_o."""

    def __init__(
        self,
        d_model: int,
        heads: int,
        head_dim: int | None = None,
        scale: bool | float = True,
        causal: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        _check_positive_int("d_model", d_model)
        _check_positive_int("heads", heads)
        if head_dim is None:
            if d_model % heads:
                divisors = [h for h in range(1, d_model + 1) if d_model % h == 0]
                raise ValueError(
                    f"heads={heads} does not divide d_model={d_model}, so the heads cannot "
                    f"split the model width evenly. Allowed: a divisor of {d_model} "
                    f"({', '.join(map(str, divisors))}), or set model.net.head_dim to give "
                    "every head its own size."
                )
            head_dim = d_model // heads
        _check_positive_int("head_dim", head_dim)
        self.heads, self.head_dim, self.causal = heads, head_dim, causal
        self.scale = resolve_scale(scale, head_dim)
        inner = heads * head_dim
        self.query = nn.Linear(d_model, inner, bias=bias)  # W_q for all heads at once
        self.key = nn.Linear(d_model, inner, bias=bias)  # W_k
        self.value = nn.Linear(d_model, inner, bias=bias)  # W_v
        self.out = nn.Linear(inner, d_model, bias=bias)  # W_o mixes the concatenated heads

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
