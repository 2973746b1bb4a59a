"""A decoder-only language model: embeddings -> N pre-LN blocks -> final norm -> LM head."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.modules.attention import AttentionMaps, MultiHeadAttention
from src.modules.block import Block
from src.modules.config import ModelConfig
from src.modules.positional import make_positional

IGNORE_INDEX = -100  # cross-entropy skips targets with this value


class TransformerLM(nn.Module):
    """Next-token model whose attention scale, head count and mask are switches."""

    def __init__(self, vocab_size: int, max_seq_len: int, **settings: Any) -> None:
        """`settings`: ModelConfig's other fields by name (d_model=64, heads=4, positional=...,
        as conf/model/transformer.yaml lists them). Checked once, kept as `self.config`, and
        handed to every layer, which reads what it needs."""
        super().__init__()
        self.config = config = ModelConfig(
            vocab_size=vocab_size, max_seq_len=max_seq_len, **settings
        )
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position = make_positional(config)  # the additive table, or None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.ln_final = nn.LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight  # weight tying, as in GPT-2/nanoGPT

        # Init as GPT-2: N(0, 0.02) everywhere, and the projections that write into the
        # residual stream scaled by 1/sqrt(2 * layers) so its variance does not grow with depth.
        # `qk_init_std` overrides W_q and W_k: 1/sqrt(d_model) gives q and k unit-variance
        # components, the regime in which the 1/sqrt(d_k) scale is derived (q.k has variance
        # d_k); GPT-2's 0.02 starts far below it, with near-uniform attention either way.
        self.apply(self._init_weights)
        qk_init_std = config.qk_init_std
        for name, param in self.named_parameters():
            if name.endswith(("attn.out.weight", "mlp.proj.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.layers))
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
        if self.config.max_seq_len < T:
            raise ValueError(
                f"sequence length {T} is longer than the model's "
                f"max_seq_len={self.config.max_seq_len}."
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

    # What diagnostics and inspection read, so they need not know how the layers are stored.

    def attention_layers(self) -> list[MultiHeadAttention]:
        """The attention module of each block, first layer first."""
        return [block.attn for block in self.blocks]

    def query_key_weights(self) -> list[tuple[nn.Parameter, nn.Parameter]]:
        """(W_q, W_k) of each layer: the weights the 1/sqrt(d_k) scale protects from vanishing
        gradients, whose gradient norms AttentionDiagnostics logs."""
        return [(attn.query.weight, attn.key.weight) for attn in self.attention_layers()]


def masked_cross_entropy(logits: Tensor, targets: Tensor, loss_mask: Tensor) -> Tensor:
    """Mean cross-entropy over the positions the task determines (loss_mask True)."""
    targets = targets.masked_fill(~loss_mask, IGNORE_INDEX)  # (B, T)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)


def knockout_mask(net: TransformerLM, layer: int, head: int) -> Tensor:
    """A (layers, nh) head mask of ones with a 0 at (layer, head): that one head knocked out."""
    layers, heads = net.config.layers, net.config.heads
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
    layers, heads = net.config.layers, net.config.heads
    base = masked_cross_entropy(net(inputs)[0], targets, loss_mask).item()
    losses = torch.empty(layers, heads)
    for layer in range(layers):
        for head in range(heads):
            logits = net(inputs, head_mask=knockout_mask(net, layer, head))[0]
            losses[layer, head] = masked_cross_entropy(logits, targets, loss_mask).item()
    return base, losses
