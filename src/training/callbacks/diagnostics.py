"""Callbacks that log what the attention does: statistics, gradient norms, heat maps, and
the loss with each head knocked out. Tag names come from src/analysis/metric_names.py."""

from __future__ import annotations

from typing import NamedTuple

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import grad_norm, rank_zero_only

from src.analysis import metric_names as names
from src.analysis.attention_stats import attention_scalars, visible_keys
from src.analysis.tensorboard_views import custom_scalars_layout
from src.data.tasks import Batch
from src.modules.transformer import head_knockout_losses
from src.validation import check_positive_int


class AttentionDiagnostics(L.Callback):
    """Logs what the attention looks like, per layer and head, on a fixed probe batch.

    Every `every_n_steps`: entropy, saturation and logit statistics
    (src/analysis/attention_stats.py), computed through the explicit path so training
    itself stays on the fused kernel.
    Every `grad_every_n_steps`: gradient norms of W_q and W_k per layer and of all weights,
    the tutorial's vanishing-gradient point. Every `image_every_n_steps` (and at the start
    and end): heat maps of the first probe example, one image per layer, heads side by side
    (its tokens, the rows and columns, are logged once as text).
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        grad_every_n_steps: int = 10,
        image_every_n_steps: int = 500,
        probe_examples: int = 16,
    ) -> None:
        for name, value in [
            ("every_n_steps", every_n_steps),
            ("grad_every_n_steps", grad_every_n_steps),
            ("image_every_n_steps", image_every_n_steps),
            ("probe_examples", probe_examples),
        ]:
            check_positive_int(name, value)  # refused at build time, not at step N
        self.every_n_steps = every_n_steps
        self.grad_every_n_steps = grad_every_n_steps
        self.image_every_n_steps = image_every_n_steps
        self.probe_examples = probe_examples
        self.probe: Batch | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batch = trainer.datamodule.probe_batch(self.probe_examples)
        self.probe = Batch(*(t.to(pl_module.device) for t in batch))
        for logger in trainer.loggers:  # the custom-scalars layout (tensorboard_views)
            if isinstance(logger, TensorBoardLogger) and trainer.is_global_zero:
                layout = custom_scalars_layout(len(pl_module.net.attention_layers()))
                logger.experiment.add_custom_scalars(layout)
        self._log_attention(trainer, pl_module, images=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        final = step >= trainer.max_steps
        if step % self.every_n_steps == 0 or final:
            images = step % self.image_every_n_steps == 0 or final
            self._log_attention(trainer, pl_module, images)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        step = trainer.global_step  # the step these gradients are about to make
        if step % self.grad_every_n_steps:
            return
        net = pl_module.net
        scalars = {names.GRAD_TOTAL: grad_norm(net, norm_type=2)["grad_2.0_norm_total"].item()}
        for layer, weights in enumerate(net.query_key_weights()):  # (W_q, W_k)
            for which, weight in zip(names.QUERY_KEY, weights):
                if weight.grad is not None:
                    scalars[names.grad_tag(layer, which)] = weight.grad.norm(2).item()
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)

    @torch.no_grad()
    def _log_attention(self, trainer: L.Trainer, pl_module: L.LightningModule, images: bool):
        net = pl_module.net
        _, maps = net(self.probe.inputs, need_weights=True)
        causal = net.config.causal
        scalars = attention_scalars(maps, causal)
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)
            if images and isinstance(logger, TensorBoardLogger):
                task = trainer.datamodule.task
                tokens = [task.render(t) for t in self.probe.inputs[0].tolist()]
                visible = visible_keys(len(tokens), causal)
                for layer, layer_maps in enumerate(maps):
                    logger.experiment.add_image(
                        names.attention_image_tag(layer),
                        heatmap_image(layer_maps.weights[0].cpu(), tokens, visible),
                        global_step=trainer.global_step,
                        dataformats="HWC",
                    )
                if trainer.global_step == 0:  # what the rows and columns are
                    logger.experiment.add_text(names.PROBE_TOKENS, " ".join(tokens), 0)


MASKED_GREY = 0.82  # cells a query may not see (the causal mask), drawn apart from weight 0


class HeatmapGeometry(NamedTuple):
    """Where `heatmap_image` puts things, in pixels: panel h spans columns
    left + h*(panel+gap) .. +panel and rows top .. top+panel; cell c of it is `cell` wide."""

    cell: int
    panel: int
    gap: int
    left: int
    top: int
    bar_left: int
    width: int
    height: int


def heatmap_geometry(heads: int, T: int, tokens: list[str], gap: int = 10) -> HeatmapGeometry:
    cell = max(12, 256 // T)  # at least the width of a label glyph
    panel = T * cell
    left = 8 + 6 * max(len(t) for t in tokens)  # room for the row labels
    top = 30  # a head title and the column labels
    bar_left = left + heads * (panel + gap)
    return HeatmapGeometry(cell, panel, gap, left, top, bar_left, bar_left + 40, top + panel + 6)


def heatmap_image(
    weights: torch.Tensor, tokens: list[str] | None = None, visible: torch.Tensor | None = None
) -> np.ndarray:
    """(nh, T, T) weights in [0, 1] -> an (H, W, 3) uint8 image, heads side by side.

    Readable without zooming: each panel titled `head h`, the tokens along both axes (rows:
    queries, columns: keys), the cells a query may not see (`visible` False) grey, and a
    colour bar from 0 to 1. Colour-mapped with numpy and labelled with Pillow's built-in font
    (a few milliseconds), because it runs during training; inspect_model.py draws with matplotlib.
    """
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    heads, T, _ = weights.shape
    tokens = tokens if tokens is not None else [str(i) for i in range(T)]
    g = heatmap_geometry(heads, T, tokens)
    coloured = colormaps["viridis"](weights.clamp(0, 1).numpy())[..., :3]  # (nh, T, T, 3)
    if visible is not None:
        coloured[:, ~visible.cpu().numpy()] = MASKED_GREY
    big = coloured.repeat(g.cell, axis=1).repeat(g.cell, axis=2)  # (nh, panel, panel, 3)
    canvas = np.ones((g.height, g.width, 3))
    for head in range(heads):
        x = g.left + head * (g.panel + g.gap)
        canvas[g.top : g.top + g.panel, x : x + g.panel] = big[head]
    bar = colormaps["viridis"](np.linspace(1, 0, g.panel))[:, None, :3]  # (panel, 1, 3): 1 on top
    canvas[g.top : g.top + g.panel, g.bar_left : g.bar_left + 10] = bar
    image = Image.fromarray((canvas * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    black = (0, 0, 0)
    for head in range(heads):
        x = g.left + head * (g.panel + g.gap)
        draw.text((x, 2), f"head {head}  (rows: query, columns: key)"[: g.panel // 6], fill=black)
        for i, token in enumerate(tokens):
            centre = i * g.cell + g.cell // 2 - 3 * len(token)
            draw.text((x + centre, 16), token, fill=black)  # keys, above the columns
    for i, token in enumerate(tokens):
        draw.text((g.left - 4 - 6 * len(token), g.top + i * g.cell + g.cell // 2 - 6), token, black)
    draw.text((g.bar_left + 13, g.top - 2), "1", fill=black)
    draw.text((g.bar_left + 13, g.top + g.panel // 2 - 6), "0.5", fill=black)
    draw.text((g.bar_left + 13, g.top + g.panel - 12), "0", fill=black)
    return np.asarray(image)


class HeadKnockout(L.Callback):
    """At the end of training, the val loss with each head knocked out, one at a time.

    Michel et al. 2019: zero one head's output before W_o and measure the loss. Logged as
    `xray/knockout/base_loss` and `xray/knockout/layer{l}/head{h}` (the loss *rise*), plus one bar
    chart per layer; `scripts/compare.py` summarises it. A single large rise means the heads
    specialised; all rises near 0 means they are redundant.
    """

    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        val = trainer.datamodule.validation_set()
        inputs, targets, loss_mask = (t.to(pl_module.device) for t in val)
        was_training = pl_module.training
        pl_module.eval()
        base, losses = head_knockout_losses(pl_module.net, inputs, targets, loss_mask)
        pl_module.train(was_training)
        rise = losses - base  # (layers, nh)
        scalars = {names.KNOCKOUT_BASE_LOSS: base}
        for (layer, head), value in np.ndenumerate(rise.numpy()):
            scalars[names.knockout_tag(layer, head)] = float(value)
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)
            if isinstance(logger, TensorBoardLogger):
                for layer, per_head in enumerate(rise):
                    logger.experiment.add_image(
                        names.knockout_image_tag(layer),
                        knockout_bar_image(per_head, base, layer),
                        global_step=trainer.global_step,
                        dataformats="HWC",
                    )


def knockout_title(layer: int, base: float) -> str:
    """The bar chart's title: the layer, and the val loss with every head to 3 significant
    digits (a trained model's is often below 0.001)."""
    return f"layer {layer}\nval loss with every head: {base:.3g}"


def knockout_bar_image(rise: torch.Tensor, base: float, layer: int) -> np.ndarray:
    """(nh,) loss rises -> an (H, W, 3) uint8 bar chart, one bar per head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = rise.numel()
    figure, ax = plt.subplots(figsize=(max(3.0, 0.35 * heads + 1.5), 2.8), dpi=100)
    ax.bar(range(heads), rise.numpy(), color="tab:red")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(xlabel="head knocked out", ylabel="val loss rise")
    # Centred on the figure and in two lines, so the base loss fits even 3 inches wide (on
    # one line over the axes, a value such as `0.000326` runs past the image's edge).
    figure.suptitle(knockout_title(layer, base), fontsize=10)
    ax.set_xticks(range(heads), [str(h) for h in range(heads)], fontsize=7 if heads > 16 else 9)
    figure.tight_layout()
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image
