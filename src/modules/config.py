"""ModelConfig: what a TransformerLM is built from, made once and handed to every layer.

As nanoGPT's GPTConfig: TransformerLM builds it from its keyword arguments, and each layer
reads the fields it needs, so a new knob is one field here (and its line in
conf/model/transformer.yaml), not an argument threaded through three constructors.
"""

from __future__ import annotations

from dataclasses import dataclass

from src.validation import check_positive_int, is_number, require


def head_size(d_model: int, heads: int, head_dim: int | None) -> int:
    """The size of each head: `head_dim`, or d_model // heads when it is None."""
    return head_dim if head_dim is not None else d_model // heads


@dataclass(frozen=True)
class ModelConfig:
    """The network's settings, checked once on creation; frozen, so no layer changes them."""

    vocab_size: int
    max_seq_len: int  # rows of the position tables (learned, sinusoidal, rope)
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    head_dim: int | None = None  # None: d_model // heads; a number fixes each head's size
    scale: bool | float = True  # the q.k factor switch; see attention.resolve_scale
    causal: bool = True
    positional: str = "learned"  # one of positional.POSITIONAL_KINDS
    rope_base: float = 10000.0  # positional="rope": theta_i = rope_base^(-2i/head_dim)
    mlp_ratio: int = 4
    bias: bool = False
    qk_init_std: float | None = None  # W_q, W_k init std; None: GPT-2's 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_seq_len", "d_model", "layers", "heads", "mlp_ratio"):
            check_positive_int(name, getattr(self, name))
        if self.head_dim is None and self.d_model % self.heads:
            divisors = [h for h in range(1, self.d_model + 1) if self.d_model % h == 0]
            raise ValueError(
                f"heads={self.heads} does not divide d_model={self.d_model}, so the heads "
                f"cannot split the model width evenly. Allowed: a divisor of {self.d_model} "
                f"({', '.join(map(str, divisors))}), or head_dim=N to give every head its own "
                "size."
            )
        if self.head_dim is not None:
            check_positive_int("head_dim", self.head_dim)
        require(
            self.qk_init_std is None or (is_number(self.qk_init_std) and self.qk_init_std > 0),
            f"qk_init_std={self.qk_init_std!r} is not allowed: use None (GPT-2's 0.02) or a "
            "positive number (1/sqrt(d_model) gives unit-variance q and k).",
        )

    @property
    def head_size(self) -> int:
        """The size of each head in use: head_dim, or d_model // heads when it is None."""
        return head_size(self.d_model, self.heads, self.head_dim)
