"""The whole inspection: load, answer, show; everything printed also goes to transcript.txt,
and the PNGs to this inspection's own folder, never to the inspected run's."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from src.analysis.attention_stats import visible_keys
from src.inspect.load import load, locate, saved_config
from src.inspect.prompts import examples
from src.inspect.views import answer_lines, attention_lines, knockout_lines, plot_layer
from src.modules import TransformerLM, greedy_generate
from src.preflight.checks import ConfigError


def inspect_model(cfg: DictConfig) -> str:
    """Everything inspect_model.py prints; PNGs and transcript.txt go to cfg.paths.output_dir."""
    top_k = cfg.get("top_k", 2)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k={top_k!r} is not allowed: it must be a positive integer.")
    run_dir, checkpoint = locate(cfg)
    saved, task = saved_config(run_dir)
    batch, known = examples(cfg, task, saved.data)  # refused here, before the weights load
    out = Path(cfg.paths.output_dir)
    if out.resolve() == run_dir.resolve() or run_dir.resolve() in out.resolve().parents:
        raise ConfigError(
            f"hydra.run.dir={out} is inside the inspected run {run_dir}, which is never "
            "written to. Allowed: any other folder (the default is logs/inspect/...)."
        )
    loaded = load(run_dir, checkpoint)
    net = loaded.net
    generated = greedy_generate(net, *batch)  # (B, T)
    targets = batch.targets if known else generated  # score the model's own answers otherwise
    lines = [
        f"model: {run_dir} (step {loaded.step}, {task.name}, "
        f"{len(net.attention_layers())} layers x {net.config.heads} heads, "
        f"scale={_scale_text(net)})",
        "",
        "Greedy generation (each answer token fed back before the next; ^ marks a wrong token):",
        *answer_lines(task, batch, generated, known),
        "",
    ]
    if not known:
        lines += [f"({task.name}: inspect_model.py knows no rule for the expected answer)", ""]
    causal = net.config.causal
    for i in range(batch.inputs.size(0)):
        sequence = torch.where(batch.loss_mask[i], generated[i], batch.targets[i])  # (T,)
        inputs = torch.cat([batch.inputs[i, :1], sequence[:-1]])  # the generated sequence
        with torch.no_grad():
            _, maps = net(inputs[None], need_weights=True)
        tokens = [task.render(t) for t in inputs.tolist()]
        wrong = ((generated[i] != targets[i]) & batch.loss_mask[i]).nonzero().flatten()
        wrong_inputs = [int(t) + 1 for t in wrong if int(t) + 1 < len(tokens)]
        title = f"{run_dir.name}, step {loaded.step}: example {i + 1}"
        lines.append(
            f"Attention, example {i + 1} (top {top_k} keys per head: glyph@position weight):"
        )
        full = torch.cat([inputs, sequence[-1:]])
        lines += attention_lines(task, full, batch.loss_mask[i], maps, top_k, targets[i])
        for layer, layer_maps in enumerate(maps):
            figure = plot_layer(
                layer_maps.weights[0],
                tokens,
                visible_keys(len(tokens), causal),
                layer,
                wrong_inputs,
                title,
            )
            path = out / f"example{i + 1}_layer{layer}.png"
            figure.savefig(path, dpi=110)
            lines.append(f"  wrote {_shown(path)}")
        lines.append("")
    lines.append(
        "Head knock-out (teacher-forced loss on these answers with that head's output zeroed "
        "before W_o; in brackets: answer tokens generation still gets right):"
    )
    lines += knockout_lines(net, batch, targets)
    text = "\n".join(lines)
    (out / "transcript.txt").write_text(text + "\n")
    return text


def _shown(path: Path) -> str:
    """The path relative to the working folder when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _scale_text(net: TransformerLM) -> str:
    attn = net.attention_layers()[0]
    return f"{attn.scale:g} (1/sqrt(d_k) = {attn.head_dim**-0.5:.3g})"
