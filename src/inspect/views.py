"""What an inspection shows: answers beside the expected ones, each head's top keys, the
head knock-out table, and one attention heat map per layer."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from src.data.tasks import Batch
from src.inspect.answers import Answer
from src.modules import TransformerLM, greedy_generate, head_knockout_losses


def _row(cells: list[str], widths: list[int]) -> str:
    return " ".join(c.rjust(w) for c, w in zip(cells, widths))


def answer_lines(answer: Answer, number: int) -> list[str]:
    """Prompt, expected and generated answer of example `number`; `^` under wrong tokens."""
    lines = [f"example {number}: {answer.prompt}"]
    if answer.expected is None:
        return [*lines, f"  generated  {answer.text}"]
    widths = [max(len(a), len(b)) for a, b in zip(answer.expected, answer.answer)]
    lines.append(f"  expected   {_row(answer.expected, widths)}")
    lines.append(f"  generated  {_row(answer.answer, widths)}")
    if answer.wrong:
        marks = ["^" if i in answer.wrong else " " for i in range(len(widths))]
        lines.append(f"             {_row(marks, widths).rstrip()}")
        return [*lines, f"  {len(answer.wrong)} of {len(widths)} wrong"]
    return [*lines, "  all right"]


def attention_lines(answer: Answer, top_k: int) -> list[str]:
    """Per generated answer token: each head's `top_k` keys (glyph@position weight) at the
    query that predicted it, one line a layer."""
    tokens = answer.tokens
    expected = answer.answer if answer.expected is None else answer.expected
    lines = []
    for n, t in enumerate(answer.loss_mask.nonzero().flatten().tolist()):
        token, right = tokens[t + 1], expected[n]
        verdict = "" if token == right else f", WRONG: expected {right!r}"
        lines.append(
            f"  answer {token!r} at position {t + 1}{verdict}, predicted by query {t} "
            f"({tokens[t]!r}):"
        )
        for layer, weights in enumerate(answer.attention):
            heads = []
            for head, row in enumerate(weights[:, t]):  # (T,) over keys
                values, keys = row.topk(min(top_k, t + 1))
                keys_text = " ".join(
                    f"{tokens[k]}@{k} {w:.2f}".replace(" 0.", " .")
                    for w, k in zip(values.tolist(), keys.tolist())
                )
                heads.append(f"h{head} {keys_text}")
            lines.append(f"    L{layer}  " + "   ".join(heads))
    return lines


def knockout_lines(net: TransformerLM, batch: Batch, targets: Tensor) -> list[str]:
    """The loss on these answers with each head zeroed, and how many answers generation still
    gets right without it (Michel et al. 2019)."""
    base, losses = head_knockout_losses(net, batch.inputs, targets, batch.loss_mask)
    total = int(batch.loss_mask.sum())
    layers, heads = losses.shape
    header = "".join(f"{'head ' + str(h):>18}" for h in range(heads))
    lines = [f"  all heads: loss {base:.4g}", f"  {'':8}{header}"]
    for layer in range(layers):
        cells = []
        for head in range(heads):
            mask = torch.ones(layers, heads)
            mask[layer, head] = 0
            generated = greedy_generate(net, batch.inputs, targets, batch.loss_mask, mask)
            right = int(((generated == targets) & batch.loss_mask).sum())
            cells.append(f"{losses[layer, head].item():.3g} ({right}/{total})".rjust(18))
        lines.append(f"  layer {layer} " + "".join(cells))
    return lines


def plot_layer(
    weights: Tensor, tokens: list[str], visible: Tensor, layer: int, wrong: list[int], title: str
):
    """One layer's (nh, T, T) maps as a matplotlib Figure: heads side by side, tokens on both
    axes (wrongly generated ones in red), the masked region hatched grey, a colour bar."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    heads, T, _ = weights.shape
    fig = Figure(figsize=(1.2 + 3.4 * heads, 4.0), layout="constrained")
    axes = fig.subplots(1, heads, squeeze=False)[0]
    cmap = colormaps["viridis"].with_extremes(bad="0.85")  # the masked region: grey
    for head, ax in enumerate(axes):
        data = np.ma.masked_where(~visible.numpy(), weights[head].numpy())  # (T, T)
        image = ax.imshow(data, cmap=cmap, vmin=0.0, vmax=1.0)
        ax.set_title(f"layer {layer}, head {head}", fontsize=10)
        ax.set_xticks(range(T), tokens, fontsize=7)
        ax.set_yticks(range(T), tokens, fontsize=7)
        for i in wrong:  # a wrongly generated token, on both axes
            ax.get_xticklabels()[i].set_color("red")
            ax.get_yticklabels()[i].set_color("red")
        ax.set_xlabel("key")
        if head == 0:
            ax.set_ylabel("query (predicts the next token)")
    fig.colorbar(image, ax=list(axes), label="attention weight (grey: masked)", shrink=0.8)
    fig.suptitle(title, fontsize=9)
    return fig
