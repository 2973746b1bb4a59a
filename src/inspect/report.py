"""The whole inspection: load, answer, show; everything printed also goes to transcript.txt,
and the PNGs and the interactive attention page (attention.html) to this inspection's own
folder, never to the inspected run's."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from src.analysis.attention_stats import visible_keys
from src.inspect.api import Run
from src.inspect.load import load, locate, saved_config
from src.inspect.prompts import examples
from src.inspect.views import answer_lines, attention_lines, knockout_lines, plot_layer
from src.modules import TransformerLM
from src.preflight.checks import ConfigError


def inspect_model(cfg: DictConfig) -> str:
    """Everything inspect_model.py prints; PNGs, attention.html and transcript.txt go to
    cfg.paths.output_dir."""
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
    run = Run(**vars(load(run_dir, checkpoint)))
    net = run.net
    answers = run.answer(batch, known)  # the notebook API's own path (src/inspect/api.py)
    targets = torch.stack([answer.targets for answer in answers])  # scored answers
    lines = [
        f"model: {run_dir} (step {run.step}, {task.name}, "
        f"{len(net.attention_layers())} layers x {net.config.heads} heads, "
        f"scale={_scale_text(net)})",
        "",
        "Greedy generation (each answer token fed back before the next; ^ marks a wrong token):",
        *(line for i, answer in enumerate(answers) for line in answer_lines(answer, i + 1)),
        "",
    ]
    if not known:
        lines += [f"({task.name}: inspect_model.py knows no rule for the expected answer)", ""]
    for i, answer in enumerate(answers):
        tokens = answer.tokens[:-1]  # the generated sequence the model read
        lines.append(
            f"Attention, example {i + 1} (top {top_k} keys per head: glyph@position weight):"
        )
        lines += attention_lines(answer, top_k)
        visible = visible_keys(len(tokens), net.config.causal)
        title = f"{run_dir.name}, step {run.step}: example {i + 1}"
        for layer, weights in enumerate(answer.attention):
            figure = plot_layer(weights, tokens, visible, layer, answer.wrong_inputs, title)
            path = out / f"example{i + 1}_layer{layer}.png"
            figure.savefig(path, dpi=110)
            lines.append(f"  wrote {_shown(path)}")
        lines.append("")
    page = run.view(answers).save(out / "attention.html")
    lines += [f"Interactive attention, every example: wrote {_shown(page)}", ""]
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
