"""The model's layers: plain PyTorch, no Lightning, no Hydra."""

from src.modules.attention import (
    AttentionMaps,
    MultiHeadAttention,
    explicit_attention,
    resolve_scale,
)
from src.modules.block import MLP, Block
from src.modules.config import ModelConfig
from src.modules.generation import exact_matches, greedy_generate
from src.modules.positional import (
    POSITIONAL_KINDS,
    RotaryPositions,
    SinusoidalPositions,
    make_positional,
    make_rotary,
)
from src.modules.transformer import (
    TransformerLM,
    head_knockout_losses,
    knockout_mask,
    masked_cross_entropy,
)

__all__ = [
    "POSITIONAL_KINDS",
    "AttentionMaps",
    "Block",
    "MLP",
    "ModelConfig",
    "MultiHeadAttention",
    "RotaryPositions",
    "SinusoidalPositions",
    "TransformerLM",
    "exact_matches",
    "explicit_attention",
    "greedy_generate",
    "head_knockout_losses",
    "knockout_mask",
    "make_positional",
    "make_rotary",
    "masked_cross_entropy",
    "resolve_scale",
]
