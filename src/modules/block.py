"""A pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

from __future__ import annotations

from torch import Tensor, nn

from src.modules.attention import AttentionMaps, MultiHeadAttention
from src.modules.config import ModelConfig


class MLP(nn.Module):
    """Position-wise feed-forward: d_model -> mlp_ratio*d_model -> d_model."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d_model, hidden = config.d_model, config.mlp_ratio * config.d_model
        self.fc = nn.Linear(d_model, hidden, bias=config.bias)
        self.act = nn.GELU()
        self.proj = nn.Linear(hidden, d_model, bias=config.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    """Pre-LN keeps the residual stream un-normalised, so it trains stably without tricks."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = MultiHeadAttention(config)
        self.ln_mlp = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self, x: Tensor, need_weights: bool = False, head_mask: Tensor | None = None
    ) -> tuple[Tensor, AttentionMaps | None]:
        attn_out, maps = self.attn(self.ln_attn(x), need_weights, head_mask)
        x = x + attn_out  # (B, T, d_model)
        x = x + self.mlp(self.ln_mlp(x))
        return x, maps
