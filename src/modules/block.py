"""A pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

from __future__ import annotations

from torch import Tensor, nn

from src.modules.attention import AttentionMaps, MultiHeadAttention


class MLP(nn.Module):
    """Position-wise feed-forward: d_model -> ratio*d_model -> d_model."""

    def __init__(self, d_model: int, ratio: int = 4, bias: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, ratio * d_model, bias=bias)
        self.act = nn.GELU()
        self.proj = nn.Linear(ratio * d_model, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    """Pre-LN keeps the residual stream un-normalised, so it trains stably without tricks."""

    def __init__(
        self,
        d_model: int,
        heads: int,
        head_dim: int | None = None,
        scale: bool | float = True,
        causal: bool = True,
        mlp_ratio: int = 4,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(d_model, bias=bias)
        self.attn = MultiHeadAttention(d_model, heads, head_dim, scale, causal, bias)
        self.ln_mlp = nn.LayerNorm(d_model, bias=bias)
        self.mlp = MLP(d_model, mlp_ratio, bias)

    def forward(
        self, x: Tensor, need_weights: bool = False, head_mask: Tensor | None = None
    ) -> tuple[Tensor, AttentionMaps | None]:
        attn_out, maps = self.attn(self.ln_attn(x), need_weights, head_mask)
        x = x + attn_out  # (B, T, d_model)
        x = x + self.mlp(self.ln_mlp(x))
        return x, maps
