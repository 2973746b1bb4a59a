"""What the attention looks like: entropy, saturation and logit statistics per head.

Pure functions of attention maps (no Lightning), so they can be checked on hand-made maps.
Rows of a causal map with a single visible key (row 0) are left out: their softmax has no
choice to make, so they would only pull entropy towards 0 and saturation towards 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from src.analysis.metric_names import attn_tag
from src.modules.attention import AttentionMaps, causal_mask

SATURATION_THRESHOLD = 0.9  # a row whose largest weight exceeds this is "saturated"


def visible_keys(T: int, causal: bool, device: torch.device | None = None) -> Tensor:
    """(T, T) bool: which keys each query row may attend to."""
    if causal:
        return ~causal_mask(T, device)
    return torch.ones(T, T, dtype=torch.bool, device=device)


def attention_stats(weights: Tensor, logits: Tensor, causal: bool) -> dict[str, Tensor]:
    """Per-head statistics of (B, nh, T, T) maps, each a (nh,) tensor averaged over B and rows.

    entropy: row entropy / log(visible keys), 1 = uniform over what the row can see, 0 = one-hot.
    max_prob: mean over rows of the largest weight. saturated_frac: share of rows whose
    largest weight exceeds 0.9. logit_std, logit_absmax: of the visible pre-softmax logits.
    distance: how far a row looks, sum_j w_ij |i - j| in positions (0 = itself, 1 = the
    previous token; a copy head at offset n reads n).
    """
    T = weights.size(-1)
    visible = visible_keys(T, causal, weights.device)  # (T, T)
    n_visible = visible.sum(-1)  # (T,): i+1 for row i when causal, else T
    rows = n_visible > 1  # rows with a choice to make
    w = weights[:, :, rows]  # (B, nh, R, T)
    entropy = -torch.special.xlogy(w, w).sum(-1)  # (B, nh, R), 0 log 0 = 0
    normalised = entropy / n_visible[rows].to(w.dtype).log()  # (B, nh, R)
    max_prob = w.amax(-1)  # (B, nh, R)
    visible_logits = logits[..., visible].transpose(0, 1).flatten(1)  # (nh, B * n_visible)
    position = torch.arange(T, device=weights.device)
    offset = (position[:, None] - position[None, :]).abs().to(w.dtype)  # (T, T): |i - j|
    distance = (w * offset[rows]).sum(-1)  # (B, nh, R)
    return {
        "entropy": normalised.mean(dim=(0, 2)),
        "max_prob": max_prob.mean(dim=(0, 2)),
        "saturated_frac": (max_prob > SATURATION_THRESHOLD).float().mean(dim=(0, 2)),
        "logit_std": visible_logits.std(dim=1),
        "logit_absmax": visible_logits.abs().amax(dim=1),
        "distance": distance.mean(dim=(0, 2)),
    }


def attention_scalars(maps: list[AttentionMaps], causal: bool) -> dict[str, float]:
    """Scalars for a logger: xray/attn/layer{l}/head{h}/{stat}, plus xray/attn/{stat} over all."""
    scalars: dict[str, float] = {}
    totals: dict[str, list[Tensor]] = {}
    for layer, layer_maps in enumerate(maps):
        stats = attention_stats(layer_maps.weights, layer_maps.logits, causal)
        for name, per_head in stats.items():
            totals.setdefault(name, []).append(per_head)
            for head, value in enumerate(per_head.tolist()):
                scalars[attn_tag(name, layer, head)] = value
    for name, parts in totals.items():
        all_heads = torch.cat(parts)
        summary = all_heads.max() if name == "logit_absmax" else all_heads.mean()
        scalars[attn_tag(name)] = summary.item()
    return scalars
