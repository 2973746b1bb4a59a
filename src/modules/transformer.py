"""A decoder-only language model: embeddings -> N pre-LN blocks -> final norm -> LM head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.modules.attention import AttentionMaps, _check_positive_int
from src.modules.block import Block
from src.modules.positional import make_positional

IGNORE_INDEX = -100  # cross-entropy skips targets with this value


class TransformerLM(nn.Module):
    """Next-token model whose attention scale, head count and mask are switches."""

    def __init__(
        self,
        vocab_size: int,
        max_seq_len: int,
        d_model: int = 64,
        layers: int = 2,
        heads: int = 4,
        head_dim: int | None = None,
        scale: bool | float = True,
        causal: bool = True,
        positional: str = "learned",
        mlp_ratio: int = 4,
        bias: bool = False,
        qk_init_std: float | None = None,
    ) -> None:
        super().__init__()
        for name, value in [
            ("vocab_size", vocab_size),
            ("max_seq_len", max_seq_len),
            ("d_model", d_model),
            ("layers", layers),
            ("mlp_ratio", mlp_ratio),
        ]:
            _check_positive_int(name, value)
        if qk_init_std is not None and not (
            isinstance(qk_init_std, (int, float)) and qk_init_std > 0
        ):
            raise ValueError(
                f"qk_init_std={qk_init_std!r} is not allowed: use null (GPT-2's 0.02) or a "
                "positive number (1/sqrt(d_model) gives unit-variance q and k)."
            )
        self.max_seq_len = max_seq_len
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position = make_positional(positional, max_seq_len, d_model)
        self.blocks = nn.ModuleList(
            Block(d_model, heads, head_dim, scale, causal, mlp_ratio, bias) for _ in range(layers)
        )
        self.ln_final = nn.LayerNorm(d_model, bias=bias)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight  # weight tying, as in GPT-2/nanoGPT

        # Init as GPT-2: N(0, 0.02) everywhere, and the projections that write into the
        # residual stream scaled by 1/sqrt(2 * layers) so its variance does not grow with depth.
        # `qk_init_std` overrides W_q and W_k: 1/sqrt(d_model) gives q and k unit-variance
        # components, the regime in which the 1/sqrt(d_k) scale is derived (q.k has variance
        # d_k); GPT-2's 0.02 starts far below it, with near-uniform attention either way.
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith(("attn.out.weight", "mlp.proj.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * layers))
            if qk_init_std is not None and name.endswith(("attn.query.weight", "attn.key.weight")):
                nn.init.normal_(param, mean=0.0, std=qk_init_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self, idx: Tensor, need_weights: bool = False, head_mask: Tensor | None = None
    ) -> tuple[Tensor, list[AttentionMaps] | None]:
        """idx: (B, T) token ids -> logits (B, T, vocab), and per-layer maps when asked.

        `head_mask` (layers, nh): 0 zeroes that head's output before W_o (a knock-out),
        1 keeps it; see `head_knockout_losses`.
        """
        B, T = idx.shape
        if self.max_seq_len < T:
            raise ValueError(
                f"sequence length {T} is longer than the model's max_seq_len={self.max_seq_len}."
            )
        x = self.token_embedding(idx)  # (B, T, d_model)
        if self.position is not None:
            x = x + self.position(torch.arange(T, device=idx.device))  # (T, d_model) broadcast
        maps = [] if need_weights else None
        if head_mask is not None and head_mask.size(0) != len(self.blocks):
            raise ValueError(
                f"head_mask has {head_mask.size(0)} rows; it needs one per layer "
                f"({len(self.blocks)}), each with one entry per head."
            )
        for layer, block in enumerate(self.blocks):
            layer_mask = None if head_mask is None else head_mask[layer]
            x, block_maps = block(x, need_weights, layer_mask)
            if need_weights:
                maps.append(block_maps)
        return self.lm_head(self.ln_final(x)), maps  # (B, T, vocab)


def masked_cross_entropy(logits: Tensor, targets: Tensor, loss_mask: Tensor) -> Tensor:
    """Mean cross-entropy over the positions the task determines (loss_mask True)."""
    targets = targets.masked_fill(~loss_mask, IGNORE_INDEX)  # (B, T)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)


def knockout_mask(net: TransformerLM, layer: int, head: int) -> Tensor:
    """A (layers, nh) head mask of ones with a 0 at (layer, head): that one head knocked out."""
    layers, heads = len(net.blocks), net.blocks[0].attn.heads
    if not (0 <= layer < layers and 0 <= head < heads):
        raise ValueError(
            f"cannot knock out layer {layer}, head {head}: this model has layers 0..{layers - 1} "
            f"and heads 0..{heads - 1} in each."
        )
    mask = torch.ones(layers, heads, device=net.lm_head.weight.device)
    mask[layer, head] = 0.0
    return mask


@torch.no_grad()
def head_knockout_losses(
    net: TransformerLM, inputs: Tensor, targets: Tensor, loss_mask: Tensor
) -> tuple[float, Tensor]:
    """The loss with every head, and (layers, nh) losses with one head knocked out each.

    Michel, Levy, Neubig 2019 ("Are Sixteen Heads Really Better than One?"): zero one head's
    output before W_o, keep everything else, and see how much the loss rises. A large rise
    means the model relies on that head; none means the others cover for it.
    """
    layers, heads = len(net.blocks), net.blocks[0].attn.heads
    base = masked_cross_entropy(net(inputs)[0], targets, loss_mask).item()
    losses = torch.empty(layers, heads)
    for layer in range(layers):
        for head in range(heads):
            logits = net(inputs, head_mask=knockout_mask(net, layer, head))[0]
            losses[layer, head] = masked_cross_entropy(logits, targets, loss_mask).item()
    return base, losses
